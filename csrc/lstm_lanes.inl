// lstm_lanes.inl: forward and backward of one LSTM layer with the batch in
// the vector lanes, for small hidden sizes (the layout and when it is used:
// lstm.h, lanes_layout). Included by lstm_kernels.inl inside an ISA
// namespace, after the gate math (gates_forward_lanes, gates_backward_lanes).
//
// Why: with H = 5 a row of 4H = 20 gates fills a quarter of a 16-lane
// vector's work and its gate math needs gathers (the staged path). Batch
// rows are independent through the whole recurrence, so here each vector
// holds one hidden unit of 16 (or 8) batch rows: every product is a
// broadcast weight times a contiguous row of lanes, and the gate math runs
// on full vectors with no gather. A block of lanes goes through all T steps
// while its rows stay in L1; the weight gradients, which sum over (t, b),
// are lane-parallel dot products after the loop.
//
// Runs on one thread (lanes_layout only admits such sizes), so no result
// depends on a thread count. Padding lanes (b >= B) compute on zero inputs;
// they never mix with real lanes inside the loop, and are zeroed before the
// sums over lanes.

namespace lanes {

// Lanes per block: NV vectors. 4 gates × NV accumulators + NV loads must fit
// the register file. The rest of the batch (at most NV - 1 <= 3 vectors) goes
// in one narrower block.
template <typename T>
constexpr int block_vectors() { return kVectorRegisters >= 32 ? 4 : (kVectorRegisters >= 16 ? 2 : 4); }

template <typename T>
constexpr int64_t block_lanes() { return block_vectors<T>() * Vec<T>::W; }

// Lanes of the widest block for a padded batch Bp: the size of every
// per-block buffer (a block goes through all T steps on its own, so carried
// state never needs the whole batch's width).
template <typename T>
inline int64_t widest_block(int64_t Bp) { return Bp < block_lanes<T>() ? Bp : block_lanes<T>(); }

// Where the forward keeps h and c: the cache's history (row stride T·Bp,
// one slot per step; c0 and h0 go into slot 0) or, for inference, per block
// two h slots and one c slot. The workspace holds x in lanes and those
// block buffers only, so its size beyond x's is independent of T.
struct ForwardPlan {
  int64_t B, Tn, I, H, Bp;
  bool cache;
  // workspace offsets (elements)
  int64_t xl, hbuf, cbuf, total;
};

template <typename T>
ForwardPlan forward_plan(Dims d, bool cache, bool ids) {
  ForwardPlan p{d.B, d.T, d.I, d.H, padded_batch(d.B), cache, 0, 0, 0, 0};
  const int64_t lw = widest_block<T>(p.Bp);
  int64_t o = 0;
  p.xl = o;   o += ids ? 0 : d.I * d.T * lw;    // the block's x transposed to (T, I, NL)
  p.hbuf = o; o += (cache ? 1 : 2) * d.H * lw;  // h_t where the history does not keep it
  p.cbuf = o; o += cache ? 0 : d.H * lw;
  p.total = o;
  return p;
}

// Between batch-first rows and lanes: per step, every h_t goes out to y and
// every dy_t comes in this way, so on AVX-512 (float) 16 rows × 16 lanes move
// through one in-register transpose instead of 256 scalar copies. Lane
// buffers always hold whole groups of 16 lanes there (blocks are multiples of
// the vector width), so a group may be read or written in full.
#if defined(PYLSTM_ISA_AVX512)
inline void transpose16x16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {  // per 128-bit lane q: (a[4q], b[4q], a[4q+1], b[4q+1]) and the next two
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i+k], 128-bit lane q: column 4q+k of rows 4i..4i+3
    const __m512d lo = _mm512_castps_pd(t[4 * i]), hi = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d lo2 = _mm512_castps_pd(t[4 * i + 2]), hi2 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  for (int k = 0; k < 4; ++k) {  // 128-bit lanes regrouped: columns k, 8+k (0x88) and 4+k, 12+k (0xdd)
    t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
    t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
    t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
  }
  for (int k = 0; k < 4; ++k) {  // r[c] = column c, rows 0..15
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
    r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xdd);
  }
}
inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// 16 lanes × nf features of rows src[b*bs + f], b in [b0, b0 + nl), as r[f] (zeros past nl).
inline void load_rows16(__m512 (&r)[16], const float* src, int64_t bs, int64_t nl, int64_t nf) {
  const __mmask16 m = first_lanes(nf);
  for (int64_t l = 0; l < 16; ++l) r[l] = l < nl ? _mm512_maskz_loadu_ps(m, src + l * bs) : _mm512_setzero_ps();
  transpose16x16(r);
}
#endif

// (B, ·, F) batch-first rows -> (F, ·, Bp) lanes: dst[f*fs + b] = src[b*bs + f], zeros past B.
template <typename T>
void to_lanes(T* dst, int64_t fs, const T* src, int64_t bs, int64_t B, int64_t Bp, int64_t F) {
#if defined(PYLSTM_ISA_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    if (src && F >= 4) {
      int64_t b0 = 0;
      for (; b0 < B; b0 += 16)
        for (int64_t f0 = 0; f0 < F; f0 += 16) {
          __m512 r[16];
          const int64_t nf = F - f0 < 16 ? F - f0 : 16;
          load_rows16(r, src + b0 * bs + f0, bs, B - b0, nf);
          for (int64_t f = 0; f < nf; ++f) _mm512_storeu_ps(dst + (f0 + f) * fs + b0, r[f]);
        }
      for (int64_t f = 0; f < F; ++f)
        for (int64_t b = b0; b < Bp; ++b) dst[f * fs + b] = 0.0f;
      return;
    }
  }
#endif
  for (int64_t f = 0; f < F; ++f) {
    T* d = dst + f * fs;
    if (src)
      for (int64_t b = 0; b < B; ++b) d[b] = src[b * bs + f];
    else
      for (int64_t b = 0; b < B; ++b) d[b] = T(0);
    for (int64_t b = B; b < Bp; ++b) d[b] = T(0);
  }
}

// dst[f*fs + b] += src[b*bs + f] for b < B (dy_t into the carried dh).
template <typename T>
void add_to_lanes(T* dst, int64_t fs, const T* src, int64_t bs, int64_t B, int64_t F) {
#if defined(PYLSTM_ISA_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    if (F >= 4) {
      for (int64_t b0 = 0; b0 < B; b0 += 16)
        for (int64_t f0 = 0; f0 < F; f0 += 16) {
          __m512 r[16];
          const int64_t nf = F - f0 < 16 ? F - f0 : 16;
          load_rows16(r, src + b0 * bs + f0, bs, B - b0, nf);
          for (int64_t f = 0; f < nf; ++f) {
            float* d = dst + (f0 + f) * fs + b0;
            _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), r[f]));
          }
        }
      return;
    }
  }
#endif
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < F; ++f) dst[f * fs + b] += src[b * bs + f];
}

// Lanes -> batch-first rows: dst[b*bs + f] = src[f*fs + b] for b < B.
template <typename T>
void from_lanes(T* dst, int64_t bs, const T* src, int64_t fs, int64_t B, int64_t F) {
#if defined(PYLSTM_ISA_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    if (F >= 4 && F <= 8) {  // an 8×16 transpose per 16 lanes: a third of the 16×16 one's shuffles
      alignas(64) float rows[8 * 16], cols[16 * 8];
      for (int64_t f = F; f < 8; ++f) _mm512_store_ps(rows + f * 16, _mm512_setzero_ps());
      const __mmask8 m = __mmask8((1u << F) - 1);
      for (int64_t b0 = 0; b0 < B; b0 += 16) {
        for (int64_t f = 0; f < F; ++f) _mm512_store_ps(rows + f * 16, _mm512_loadu_ps(src + f * fs + b0));
        transpose_8x16(rows, 16, cols, 8);
        const int64_t nl = B - b0 < 16 ? B - b0 : 16;
        for (int64_t l = 0; l < nl; ++l) _mm256_mask_storeu_ps(dst + (b0 + l) * bs, m, _mm256_load_ps(cols + l * 8));
      }
      return;
    }
    if (F >= 4) {
      for (int64_t b0 = 0; b0 < B; b0 += 16)
        for (int64_t f0 = 0; f0 < F; f0 += 16) {
          const int64_t nf = F - f0 < 16 ? F - f0 : 16, nl = B - b0 < 16 ? B - b0 : 16;
          __m512 r[16];
          for (int64_t f = 0; f < 16; ++f)
            r[f] = f < nf ? _mm512_loadu_ps(src + (f0 + f) * fs + b0) : _mm512_setzero_ps();
          transpose16x16(r);
          const __mmask16 m = first_lanes(nf);
          for (int64_t l = 0; l < nl; ++l) _mm512_mask_storeu_ps(dst + (b0 + l) * bs + f0, m, r[l]);
        }
      return;
    }
  }
#endif
  for (int64_t b = 0; b < B; ++b) {
    T* d = dst + b * bs;
    for (int64_t f = 0; f < F; ++f) d[f] = src[f * fs + b];
  }
}

// Gate math on n contiguous lanes (n a multiple of W): gates_forward_lanes,
// or gate_forward_unit per lane.
template <typename T>
inline void gate_math_forward(T* ai, T* af, T* ag, T* ao, const T* cp, T* c_out, T* h_out, int64_t n) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t l = 0; l < n; l += Vec<float>::W)
      gates_forward_lanes(ai + l, af + l, ag + l, ao + l, cp ? cp + l : nullptr, c_out + l, h_out + l);
    return;
  }
#endif
  for (int64_t l = 0; l < n; ++l)
    gate_forward_unit(ai[l], af[l], ag[l], ao[l], cp ? cp[l] : T(0), c_out[l], h_out[l]);
}

// acc[q][v] (+)= Σ_k w[q*qs + k] · rows[k*rs + v*W] for the 4 gate rows q of one unit.
template <typename T, int NV>
inline void accumulate_unit(Vec<T> (&acc)[4][NV], const T* w, int64_t qs, const T* rows, int64_t rs, int64_t K) {
  using V = Vec<T>;
  constexpr int W = V::W;
  for (int64_t k = 0; k < K; ++k) {
    const T* r = rows + k * rs;
    V x[NV];
    for (int v = 0; v < NV; ++v) x[v] = V::load(r + v * W);
    for (int q = 0; q < 4; ++q) {
      const V wq = V::set1(w[q * qs + k]);
      for (int v = 0; v < NV; ++v) acc[q][v] = V::fma(wq, x[v], acc[q][v]);
    }
  }
}

// One block of NV·W lanes starting at lane b0, through all T steps.
template <typename T, int NV>
void forward_block(const ForwardArgs<T>& a, const ForwardPlan& p, T* work, const T* bias, int64_t b0) {
  using V = Vec<T>;
  constexpr int W = V::W;
  constexpr int64_t NL = NV * W;
  const int64_t Tn = p.Tn, I = p.I, H = p.H, Bp = p.Bp;
  const int64_t hist = Tn * Bp;  // row stride of the cache's per-step history
  T* c_hist = a.cs;              // (H, T, Bp), cache only: c_t at slot t
  T* h_hist = a.cs ? a.cs + H * hist : nullptr;  // h_{t-1} at slot t (slot 0: h0)
  T* xl = work + p.xl;
  T* hbuf = work + p.hbuf;  // block-local rows of NL lanes
  T* cbuf = work + p.cbuf;
  const int64_t nb = p.B - b0 < 0 ? 0 : (p.B - b0 < NL ? p.B - b0 : NL);  // real lanes of the block (may be 0)
  // x[b, t, i] to lane b of row t·I + i: a batch row's T·I values at once (step by step, the I
  // values of a step took the scalar path below 4: the 5,100,2,5 forward was 3% slower).
  if (!a.ids) to_lanes(xl, NL, nb ? a.x + b0 * Tn * I : nullptr, Tn * I, nb, NL, Tn * I);
  if (!p.cache) {  // h0 into the slot step 0 reads, c0 into the running c (zeros when absent)
    to_lanes(hbuf + H * NL, NL, a.h0 && nb ? a.h0 + b0 * H : nullptr, H, nb, NL, H);
    to_lanes(cbuf, NL, a.c0 && nb ? a.c0 + b0 * H : nullptr, H, nb, NL, H);
  }
  alignas(64) T scratch[4][NL];  // one unit's gates when there is no cache
  for (int64_t t = 0; t < Tn; ++t) {
    // h_{t-1}, c_{t-1}, c_t and h_t for lane 0 of this block, with their row strides.
    const T* hp;
    const T* cp;
    T *hc, *cc;
    int64_t hp_rs, cp_rs, hc_rs, cc_rs;
    if (p.cache) {
      hp = h_hist + t * Bp + b0;
      hp_rs = hist;
      const bool last = t == Tn - 1;  // h_T is kept by y and h_T, not the history
      hc = last ? hbuf : h_hist + (t + 1) * Bp + b0;
      hc_rs = last ? NL : hist;
      cc = c_hist + t * Bp + b0;
      cc_rs = hist;
      // Step 0 reads c0 from slot 0 and overwrites it with c_0 (elementwise, in place).
      cp = t ? cc - Bp : (a.c0 ? cc : nullptr);
      cp_rs = hist;
    } else {
      hc = hbuf + (t & 1) * H * NL;
      hp = hbuf + ((t + 1) & 1) * H * NL;  // step 0: slot 1, which holds h0
      cc = cbuf;  // c is updated in place: unit j reads only its own c_{t-1}
      cp = cbuf;
      hp_rs = cp_rs = hc_rs = cc_rs = NL;
    }
    for (int64_t j = 0; j < H; ++j) {
      V acc[4][NV];
      if (a.ids) {  // bias + column ids[b, t] of W_ih, gathered per lane
        alignas(64) T init[4][NL];
        for (int64_t l = 0; l < NL; ++l) {
          const int64_t b = b0 + l;
          const int64_t id = b < p.B ? a.ids[b * Tn + t] : -1;
          for (int q = 0; q < 4; ++q) {
            const int64_t n = q * H + j;
            init[q][l] = bias[n] + (id >= 0 ? a.W_ih[n * I + id] : T(0));
          }
        }
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < NV; ++v) acc[q][v] = V::load(init[q] + v * W);
      } else {
        for (int q = 0; q < 4; ++q)
          for (int v = 0; v < NV; ++v) acc[q][v] = V::set1(bias[q * H + j]);
        accumulate_unit<T, NV>(acc, a.W_ih + j * I, H * I, xl + t * I * NL, NL, I);
      }
      // A zero initial state is multiplied too: 0·NaN = NaN must show.
      accumulate_unit<T, NV>(acc, a.W_hh + j * H, H * H, hp, hp_rs, H);
      T* gq[4];
      for (int q = 0; q < 4; ++q) {
        gq[q] = p.cache ? a.gates + (q * H + j) * hist + t * Bp + b0 : scratch[q];
        for (int v = 0; v < NV; ++v) acc[q][v].store(gq[q] + v * W);
      }
      gate_math_forward<T>(gq[0], gq[1], gq[2], gq[3], cp ? cp + j * cp_rs : nullptr, cc + j * cc_rs,
                           hc + j * hc_rs, NL);
    }
    if (nb > 0) from_lanes(a.y + (b0 * Tn + t) * H, Tn * H, hc, hc_rs, nb, H);  // y[b, t, :] = h_t
    if (t == Tn - 1 && nb > 0) {
      from_lanes(a.h_T + b0 * H, H, hc, hc_rs, nb, H);
      from_lanes(a.c_T + b0 * H, H, cc, cc_rs, nb, H);
    }
  }
}

template <typename T>
int64_t forward_workspace_elems(Dims d, bool cache, bool ids) {
  return forward_plan<T>(d, cache, ids).total + 4 * d.H;  // + the summed bias
}

template <typename T>
void forward(const ForwardArgs<T>& a, Dims d) {
  const ForwardPlan p = forward_plan<T>(d, a.cs != nullptr, a.ids != nullptr);
  T* work = a.work;
  T* bias = work + p.total;
  const int64_t G = 4 * d.H;
  for (int64_t n = 0; n < G; ++n) bias[n] = a.b_ih[n] + a.b_hh[n];
  if (p.cache) {  // slot 0 of the histories: h0 (zeros when absent), c0
    const int64_t hist = d.T * p.Bp;
    to_lanes(a.cs + d.H * hist, hist, a.h0, d.H, d.B, p.Bp, d.H);
    if (a.c0) to_lanes(a.cs, hist, a.c0, d.H, d.B, p.Bp, d.H);
  }
  constexpr int NV = block_vectors<T>();
  constexpr int64_t NL = block_lanes<T>();
  int64_t b0 = 0;
  for (; b0 + NL <= p.Bp; b0 += NL) forward_block<T, NV>(a, p, work, bias, b0);
  switch ((p.Bp - b0) / Vec<T>::W) {  // the rest in one block: a one-vector block is load bound
    case 0: break;
    case 1: forward_block<T, 1>(a, p, work, bias, b0); break;
    case 2: forward_block<T, 2>(a, p, work, bias, b0); break;
    default: forward_block<T, 3>(a, p, work, bias, b0); break;
  }
  if (p.cache) {  // padding lanes of the h history to zero: the backward's sums over lanes read them
    T* h_hist = a.cs + d.H * d.T * p.Bp;
    for (int64_t k = 0; k < d.H * d.T; ++k)
      for (int64_t b = d.B; b < p.Bp; ++b) h_hist[k * p.Bp + b] = T(0);
  }
}

// ------------------------------------------------------------- backward --

// Workspace of the backward, per block of lanes: x (for dW_ih) and the
// carried dh. The carried dc lives in the cache's c history (the slot of
// c_t is free once step t is done), dy folds into the carried dh, and c0
// and dc_T are gathered per hidden unit on the stack.
struct BackwardPlan {
  int64_t B, Tn, I, H, Bp;
  int64_t xl, dhl, total;
};

template <typename T>
BackwardPlan backward_plan(Dims d, bool ids) {
  BackwardPlan p{d.B, d.T, d.I, d.H, padded_batch(d.B), 0, 0, 0};
  const int64_t lw = widest_block<T>(p.Bp);
  int64_t o = 0;
  p.xl = o;  o += ids ? 0 : d.I * d.T * lw;
  p.dhl = o; o += d.H * lw;
  p.total = o;
  return p;
}

template <typename T>
int64_t backward_workspace_elems(Dims d, bool ids) {
  return backward_plan<T>(d, ids).total;
}

// Gate backward on n contiguous lanes: gates_backward_lanes, or
// gate_backward_unit per lane.
// dh already includes dy; dc_in may be null (zero) and dc_out may be c.
template <typename T>
inline void gate_math_backward(T* ai, T* af, T* ag, T* ao, const T* dc_in, T* dc_out, const T* dh, const T* c,
                               const T* cp, int64_t n, bool clip_on, T clip) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t l = 0; l < n; l += Vec<float>::W)
      gates_backward_lanes(ai + l, af + l, ag + l, ao + l, dc_in ? dc_in + l : nullptr, dc_out + l, dh + l,
                           nullptr, c + l, cp ? cp + l : nullptr, clip_on, clip);
    return;
  }
#endif
  for (int64_t l = 0; l < n; ++l)
    dc_out[l] = gate_backward_unit(ai[l], af[l], ag[l], ao[l], dc_in ? dc_in[l] : T(0), dh[l], c[l],
                                   cp ? cp[l] : T(0), clip_on, clip);
}

// acc[r][v] = Σ_n w[n*ldw + r] · dG[n*gs + v*W]: R columns of a weight matrix
// (read in place: the R values of row n are adjacent) against dG_t.
template <typename T, int R, int NV>
inline void transposed_rows(Vec<T> (&acc)[R][NV], const T* w, int64_t ldw, int64_t G, const T* dG, int64_t gs) {
  using V = Vec<T>;
  constexpr int W = V::W;
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (int64_t n = 0; n < G; ++n) {
    V x[NV];
    for (int v = 0; v < NV; ++v) x[v] = V::load(dG + n * gs + v * W);
    for (int r = 0; r < R; ++r) {
      const V wr = V::set1(w[n * ldw + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(wr, x[v], acc[r][v]);
    }
  }
}

// Columns [k0, k0+R) of dG_t·W_hh (dh_{t-1}, carried in lanes) or, with
// to_dx, of dG_t·W_ih (dx_t, written batch-first).
template <typename T, int R, int NV>
inline void backward_products(const BackwardArgs<T>& a, const BackwardPlan& p, T* dhl, bool to_dx, int64_t k0,
                              int64_t t, int64_t b0, int64_t nb) {
  using V = Vec<T>;
  constexpr int W = V::W;
  constexpr int64_t NL = NV * W;
  const int64_t G = 4 * p.H, hist = p.Tn * p.Bp;
  V acc[R][NV];
  const T* w = to_dx ? a.W_ih + k0 : a.W_hh + k0;
  transposed_rows<T, R, NV>(acc, w, to_dx ? p.I : p.H, G, a.gates + t * p.Bp + b0, hist);
  for (int r = 0; r < R; ++r) {
    const int64_t k = k0 + r;
    if (!to_dx) {
      for (int v = 0; v < NV; ++v) acc[r][v].store(dhl + k * NL + v * W);
    } else {
      alignas(64) T lanes_out[NL];
      for (int v = 0; v < NV; ++v) acc[r][v].store(lanes_out + v * W);
      for (int64_t l = 0; l < nb; ++l) a.dx[((b0 + l) * p.Tn + t) * p.I + k] = lanes_out[l];
    }
  }
}

// C[m*ldc + n] += Σ_s Σ_k A[m*lda + s*a_seg + k] · Bm[n*ldb + s*b_seg + k]
// over segs segments of len values (a multiple of W) each.
struct Segments {
  int64_t segs, len, a_seg, b_seg;
};

template <typename T, int MB, int NB>
inline void reduce_nt_block(T* C, int64_t ldc, const T* A, int64_t lda, const T* Bm, int64_t ldb, Segments sg) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = V::zero();
  for (int64_t s = 0; s < sg.segs; ++s) {
    const T* As = A + s * sg.a_seg;
    const T* Bs = Bm + s * sg.b_seg;
    for (int64_t k = 0; k < sg.len; k += W) {
      V x[MB], y[NB];
      for (int i = 0; i < MB; ++i) x[i] = V::load(As + i * lda + k);
      for (int j = 0; j < NB; ++j) y[j] = V::load(Bs + j * ldb + k);
      for (int i = 0; i < MB; ++i)
        for (int j = 0; j < NB; ++j) acc[i][j] = V::fma(x[i], y[j], acc[i][j]);
    }
  }
  if constexpr (MB == 4) {  // four rows' sums of one column at a time
    for (int j = 0; j < NB; ++j) {
      T s4[4];
      sum4<T>(acc[0][j], acc[1][j], acc[2][j], acc[3][j], s4);
      for (int i = 0; i < 4; ++i) C[i * ldc + j] += s4[i];
    }
  } else {
    for (int i = 0; i < MB; ++i)
      for (int j = 0; j < NB; ++j) C[i * ldc + j] += acc[i][j].sum();
  }
}

template <typename T>
void reduce_nt(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t lda, const T* Bm, int64_t ldb,
               Segments sg) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) reduce_nt_block<T, 4, 4>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, sg);
    T* c = C + m * ldc + n;
    const T *am = A + m * lda, *bn = Bm + n * ldb;
    switch (N - n) {  // the last columns in one pass
      case 1: reduce_nt_block<T, 4, 1>(c, ldc, am, lda, bn, ldb, sg); break;
      case 2: reduce_nt_block<T, 4, 2>(c, ldc, am, lda, bn, ldb, sg); break;
      case 3: reduce_nt_block<T, 4, 3>(c, ldc, am, lda, bn, ldb, sg); break;
      default: break;
    }
  }
  for (; m < M; ++m) {
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) reduce_nt_block<T, 1, 4>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, sg);
    for (; n < N; ++n) reduce_nt_block<T, 1, 1>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, sg);
  }
}

// One block of NV·W lanes starting at lane b0, through all T steps in reverse,
// then its share of dW_ih (x of the block gathered in lanes).
template <typename T, int NV>
void backward_block(const BackwardArgs<T>& a, const BackwardPlan& p, T* work, int64_t b0) {
  constexpr int64_t NL = NV * Vec<T>::W;
  const int64_t Tn = p.Tn, I = p.I, H = p.H, G = 4 * H, Bp = p.Bp, hist = Tn * Bp;
  T* c_hist = a.cs;
  T* dhl = work + p.dhl;  // block-local rows of NL lanes
  const int64_t nb = p.B - b0 < 0 ? 0 : (p.B - b0 < NL ? p.B - b0 : NL);  // real lanes of the block (may be 0)
  to_lanes(dhl, NL, a.dh_T && nb ? a.dh_T + b0 * H : nullptr, H, nb, NL, H);  // null: zeros
  alignas(64) T dc_T[NL], c0[NL];
  for (int64_t t = Tn - 1; t >= 0; --t) {
    if (a.dy && nb > 0)  // dy_t joins the carried dh: the gate math reads their sum
      add_to_lanes(dhl, NL, a.dy + (b0 * Tn + t) * H, Tn * H, nb, H);
    for (int64_t j = 0; j < H; ++j) {
      T* g = a.gates + j * hist + t * Bp + b0;
      T* c = c_hist + j * hist + t * Bp + b0;  // c_t in, then the dc carried to step t-1 out
      const T* dc_in = c + Bp;                 // what step t+1 left in c_{t+1}'s slot
      if (t == Tn - 1) {
        dc_in = a.dc_T ? dc_T : nullptr;
        if (a.dc_T) to_lanes(dc_T, NL, nb ? a.dc_T + b0 * H + j : nullptr, H, nb, NL, 1);
      }
      const T* cp = c - Bp;
      if (t == 0) {
        cp = a.c0 ? c0 : nullptr;
        if (a.c0) to_lanes(c0, NL, nb ? a.c0 + b0 * H + j : nullptr, H, nb, NL, 1);
      }
      gate_math_backward<T>(g, g + H * hist, g + 2 * H * hist, g + 3 * H * hist, dc_in, c, dhl + j * NL, c, cp, NL,
                            a.clip_on, a.clip);
    }
    for (int pass = 0; pass < (a.dx ? 2 : 1); ++pass) {
      const bool to_dx = pass == 1;
      const int64_t cols = to_dx ? I : H;
      int64_t k0 = 0;
      for (; k0 + 4 <= cols; k0 += 4) backward_products<T, 4, NV>(a, p, dhl, to_dx, k0, t, b0, nb);
      switch (cols - k0) {  // the last columns in one pass (a one-column pass is load bound)
        case 1: backward_products<T, 1, NV>(a, p, dhl, to_dx, k0, t, b0, nb); break;
        case 2: backward_products<T, 2, NV>(a, p, dhl, to_dx, k0, t, b0, nb); break;
        case 3: backward_products<T, 3, NV>(a, p, dhl, to_dx, k0, t, b0, nb); break;
        default: break;
      }
    }
  }
  if (nb > 0) {
    from_lanes(a.dh0 + b0 * H, H, dhl, NL, nb, H);
    from_lanes(a.dc0 + b0 * H, H, c_hist + b0, hist, nb, H);  // slot 0 ends with the dc reaching c0
  }
  // Padding lanes hold values computed from zero inputs (NaN where a weight
  // is ±Inf): zero them before any sum over lanes. (The forward zeroed them
  // in the h history.)
  for (int64_t n = 0; n < G; ++n)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t l = nb; l < NL; ++l) a.gates[n * hist + t * Bp + b0 + l] = T(0);
  if (a.ids) {
    for (int64_t n = 0; n < G; ++n)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t l = 0; l < nb; ++l)
          a.dW_ih[n * I + a.ids[(b0 + l) * Tn + t]] += a.gates[n * hist + t * Bp + b0 + l];
  } else {  // dW_ih += Σ_(t, lanes of the block) dG · x
    T* xl = work + p.xl;  // (I, T, NL)
    for (int64_t t = 0; t < Tn; ++t)
      to_lanes(xl + t * NL, Tn * NL, nb ? a.x + (b0 * Tn + t) * I : nullptr, Tn * I, nb, NL, I);
    reduce_nt(a.dW_ih, I, G, I, a.gates + b0, hist, xl, Tn * NL, Segments{Tn, NL, Bp, NL});
  }
}

// dW_hh with the hidden units of h_{t-1} in the lanes (H <= one vector):
// row n of dW_hh += Σ_(t, b) dG_t[n, b] · h_{t-1}[b, :], h_{t-1} read
// batch-first from y (h0 at t = 0). reduce_nt instead sums each weight's
// T·Bp terms across lanes and then needs one horizontal sum per weight: for
// few terms (T = 3, B = 32, H = 15: 96) the horizontal sums cost as much as
// the dot products, and this way has none: dW_hh took 2.9 of a 10.2 µs
// backward there. For long histories reduce_nt is cheaper: it runs full
// vectors of terms where this one runs H of W lanes.
template <typename T>
inline bool dW_hh_by_rows_pays(Dims d, int64_t Bp) {
  const int64_t terms = d.T * Bp;  // per weight, in reduce_nt
  return d.H <= Vec<T>::W && terms < d.H * (terms / Vec<T>::W + 6);  // (6: about a horizontal sum's cost)
}

// acc[r] += Σ_b dG[r*hist + b] · hv[b] over nb rows of whole vectors hv.
template <typename T, int RB>
inline void outer_sums(Vec<T> (&acc)[RB], const T* dG, int64_t hist, const T* hv, int64_t nb) {
  using V = Vec<T>;
  V s[RB];  // (a local copy, so that the compiler keeps it in registers)
  for (int r = 0; r < RB; ++r) s[r] = acc[r];
  for (int64_t b = 0; b < nb; ++b) {
    const V hb = V::load(hv + b * V::W);
    for (int r = 0; r < RB; ++r) s[r] = V::fma(V::set1(dG[r * hist + b]), hb, s[r]);
  }
  for (int r = 0; r < RB; ++r) acc[r] = s[r];
}

// Rows [n0, n0 + RB) of dW_hh, by dW_hh_by_rows. The rows of h_{t-1} are
// first copied into whole vectors (zero past H) on the stack: read through
// masked loads inside the sums, they made the compiler store every
// accumulator on every step (the masked load may read any memory, as far as
// it knows).
template <typename T, int RB>
void dW_hh_rows(const BackwardArgs<T>& a, const BackwardPlan& p, int64_t n0) {
  using V = Vec<T>;
  constexpr int64_t kRows = 32;
  const int64_t H = p.H, Tn = p.Tn, Bp = p.Bp, hist = Tn * Bp;
  alignas(64) T hv[kRows * V::W];
  V acc[RB];
  for (int r = 0; r < RB; ++r) acc[r] = V::zero();
  if (!a.h0) {
    // h_{-1} = 0, so step 0 adds 0·dG_0: nothing, but NaN wherever dG_0 is
    // not finite, as in the reference and the other paths (skipped, a NaN
    // from the forward vanished from dW_hh: found by fuzz_long). Summed
    // here per row, not as a step of zero rows in the loop below: that
    // made the 3,32,1,15 training step about 5% slower.
    const T* g0 = a.gates + n0 * hist;  // row r of step 0 at g0 + r * hist: B values
    for (int r = 0; r < RB; ++r) {
      V z = V::zero();
      int64_t b = 0;
      for (; b + V::W <= p.B; b += V::W) z = V::fma(V::load(g0 + r * hist + b), V::zero(), z);
      if (b < p.B) z = V::fma(V::load_first(g0 + r * hist + b, p.B - b), V::zero(), z);
      acc[r] = acc[r] + V::set1(z.sum());
    }
  }
  for (int64_t t = a.h0 ? 0 : 1; t < Tn; ++t) {  // (without h0: step 0 above)
    const T* h = t ? a.y + (t - 1) * H : a.h0;   // row b at h + b * hs
    const int64_t hs = t ? Tn * H : H;
    for (int64_t b0 = 0; b0 < p.B; b0 += kRows) {
      const int64_t nb = p.B - b0 < kRows ? p.B - b0 : kRows;
      for (int64_t b = 0; b < nb; ++b) V::load_first(h + (b0 + b) * hs, H).store(hv + b * V::W);
      outer_sums<T, RB>(acc, a.gates + n0 * hist + t * Bp + b0, hist, hv, nb);
    }
  }
  for (int r = 0; r < RB; ++r) {
    T* out = a.dW_hh + (n0 + r) * H;
    (V::load_first(out, H) + acc[r]).store_first(out, H);
  }
}

template <typename T>
void dW_hh_by_rows(const BackwardArgs<T>& a, const BackwardPlan& p) {
  const int64_t G = 4 * p.H;  // a multiple of 4: blocks of 8 rows, then one of 4
  int64_t n0 = 0;
  for (; n0 + 8 <= G; n0 += 8) dW_hh_rows<T, 8>(a, p, n0);
  if (n0 < G) dW_hh_rows<T, 4>(a, p, n0);
}

template <typename T>
void backward(const BackwardArgs<T>& a, Dims d) {
  const BackwardPlan p = backward_plan<T>(d, a.ids != nullptr);
  T* work = a.work;
  const int64_t Tn = d.T, H = d.H, G = 4 * H, Bp = p.Bp, hist = Tn * Bp;

  constexpr int NV = block_vectors<T>();
  constexpr int64_t NL = block_lanes<T>();
  int64_t b0 = 0;
  for (; b0 + NL <= Bp; b0 += NL) backward_block<T, NV>(a, p, work, b0);
  switch ((Bp - b0) / Vec<T>::W) {  // the rest in one block, as in the forward
    case 0: break;
    case 1: backward_block<T, 1>(a, p, work, b0); break;
    case 2: backward_block<T, 2>(a, p, work, b0); break;
    default: backward_block<T, 3>(a, p, work, b0); break;
  }

  // db = Σ_(t,b) dG, four rows at a time (their lane sums folded together)
  const T* gates = a.gates;
  using V = Vec<T>;
  int64_t n = 0;
  for (; n + 4 <= G; n += 4) {
    V s[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    for (int64_t k = 0; k < hist; k += V::W)
      for (int i = 0; i < 4; ++i) s[i] = s[i] + V::load(gates + (n + i) * hist + k);
    T s4[4];
    sum4<T>(s[0], s[1], s[2], s[3], s4);
    for (int i = 0; i < 4; ++i) a.db[n + i] += s4[i];
  }
  for (; n < G; ++n) {
    V s = V::zero();
    for (int64_t k = 0; k < hist; k += V::W) s = s + V::load(gates + n * hist + k);
    a.db[n] += s.sum();
  }
  // dW_hh = Σ_t dG_t · h_{t-1}ᵀ
  if (dW_hh_by_rows_pays<T>(d, Bp)) {
    dW_hh_by_rows(a, p);
  } else {  // the history keeps h_{t-1} at slot t: one product
    const T* h_hist = a.cs + H * hist;
    reduce_nt(a.dW_hh, H, G, H, gates, hist, h_hist, hist, Segments{1, hist, 0, 0});
  }
}

}  // namespace lanes
