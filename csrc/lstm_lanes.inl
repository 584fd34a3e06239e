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
  p.xl = o;   o += ids ? 0 : d.I * d.T * p.Bp;    // x transposed to (I, T, Bp)
  p.hbuf = o; o += (cache ? 1 : 2) * d.H * lw;  // h_t where the history does not keep it
  p.cbuf = o; o += cache ? 0 : d.H * lw;
  p.total = o;
  return p;
}

// (B, ·, F) batch-first rows -> (F, ·, Bp) lanes: dst[f*fs + b] = src[b*bs + f], zeros past B.
template <typename T>
void to_lanes(T* dst, int64_t fs, const T* src, int64_t bs, int64_t B, int64_t Bp, int64_t F) {
  for (int64_t f = 0; f < F; ++f) {
    T* d = dst + f * fs;
    if (src)
      for (int64_t b = 0; b < B; ++b) d[b] = src[b * bs + f];
    else
      for (int64_t b = 0; b < B; ++b) d[b] = T(0);
    for (int64_t b = B; b < Bp; ++b) d[b] = T(0);
  }
}

// x (B, T, I) -> (I, T, Bp).
template <typename T>
void x_to_lanes(T* xl, const T* x, Dims d, int64_t Bp) {
  for (int64_t t = 0; t < d.T; ++t) to_lanes(xl + t * Bp, d.T * Bp, x + t * d.I, d.T * d.I, d.B, Bp, d.I);
}

// Lanes -> batch-first rows: dst[b*bs + f] = src[f*fs + b] for b < B.
template <typename T>
void from_lanes(T* dst, int64_t bs, const T* src, int64_t fs, int64_t B, int64_t F) {
  for (int64_t b = 0; b < B; ++b) {
    T* d = dst + b * bs;
    for (int64_t f = 0; f < F; ++f) d[f] = src[f * fs + b];
  }
}

// Gate math on n contiguous lanes (n a multiple of W): same formulas as the
// row path (gates_forward_row).
template <typename T>
inline void gate_math_forward(T* ai, T* af, T* ag, T* ao, const T* cp, T* c_out, T* h_out, int64_t n) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t l = 0; l < n; l += Vec<float>::W)
      gates_forward_lanes(ai + l, af + l, ag + l, ao + l, cp ? cp + l : nullptr, c_out + l, h_out + l);
    return;
  }
#endif
  for (int64_t l = 0; l < n; ++l) {
    const T i = sigmoid(ai[l]), f = sigmoid(af[l]), g = k_tanh(ag[l]), o = sigmoid(ao[l]);
    const T c = f * (cp ? cp[l] : T(0)) + i * g;  // c_t = f⊙c_{t-1} + i⊙g
    ai[l] = i; af[l] = f; ag[l] = g; ao[l] = o;
    c_out[l] = c;
    h_out[l] = o * k_tanh(c);                     // h_t = o⊙tanh(c_t)
  }
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
  const int64_t Tn = p.Tn, I = p.I, H = p.H, Bp = p.Bp, G = 4 * H;
  const int64_t hist = Tn * Bp;  // row stride of the cache's per-step history
  T* c_hist = a.cs;              // (H, T, Bp), cache only: c_t at slot t
  T* h_hist = a.cs ? a.cs + H * hist : nullptr;  // h_{t-1} at slot t (slot 0: h0)
  const T* xl = work + p.xl;
  T* hbuf = work + p.hbuf;  // block-local rows of NL lanes
  T* cbuf = work + p.cbuf;
  const int64_t nb = p.B - b0 < 0 ? 0 : (p.B - b0 < NL ? p.B - b0 : NL);  // real lanes of the block (may be 0)
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
        accumulate_unit<T, NV>(acc, a.W_ih + j * I, H * I, xl + t * Bp + b0, Tn * Bp, I);
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
    // y[b, t, :] = h_t (batch-first output)
    for (int64_t l = 0; l < nb; ++l) {
      T* yrow = a.y + ((b0 + l) * Tn + t) * H;
      for (int64_t j = 0; j < H; ++j) yrow[j] = hc[j * hc_rs + l];
    }
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
  if (!a.ids) x_to_lanes(work + p.xl, a.x, d, p.Bp);
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

// Workspace of the backward: x in lanes (for dW_ih), and per block of lanes
// the carried dh and dc, c0, one step's dy.
struct BackwardPlan {
  int64_t B, Tn, I, H, Bp;
  int64_t xl, dhl, dcl, c0l, dyl, total;
};

template <typename T>
BackwardPlan backward_plan(Dims d, bool ids) {
  BackwardPlan p{d.B, d.T, d.I, d.H, padded_batch(d.B), 0, 0, 0, 0, 0, 0};
  const int64_t lw = widest_block<T>(p.Bp);
  int64_t o = 0;
  p.xl = o;  o += ids ? 0 : d.I * d.T * p.Bp;
  p.dhl = o; o += d.H * lw;
  p.dcl = o; o += d.H * lw;
  p.c0l = o; o += d.H * lw;
  p.dyl = o; o += d.H * lw;
  p.total = o;
  return p;
}

template <typename T>
int64_t backward_workspace_elems(Dims d, bool ids) {
  return backward_plan<T>(d, ids).total;
}

// Gate backward on n contiguous lanes: same formulas as gates_backward_row.
template <typename T>
inline void gate_math_backward(T* ai, T* af, T* ag, T* ao, T* dc_carry, const T* dh_carry, const T* dy,
                               const T* c, const T* cp, int64_t n, bool clip_on, T clip) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t l = 0; l < n; l += Vec<float>::W)
      gates_backward_lanes(ai + l, af + l, ag + l, ao + l, dc_carry + l, dh_carry + l, dy + l, c + l,
                           cp ? cp + l : nullptr, clip_on, clip);
    return;
  }
#endif
  for (int64_t l = 0; l < n; ++l) {
    const T i = ai[l], f = af[l], g = ag[l], o = ao[l];
    const T tc = k_tanh(c[l]);
    const T dh = dh_carry[l] + dy[l];
    const T dc = dc_carry[l] + dh * o * (T(1) - tc * tc);  // through h_t = o⊙tanh(c_t)
    T dai = dc * g * (i * (T(1) - i));                    // dL/da_i = dc·g·σ'
    T daf = dc * (cp ? cp[l] : T(0)) * (f * (T(1) - f));  // dL/da_f = dc·c_{t-1}·σ'
    T dag = dc * i * (T(1) - g * g);                      // dL/da_g = dc·i·tanh'
    T dao = dh * tc * (o * (T(1) - o));                   // dL/da_o = dh·tanh(c_t)·σ'
    if (clip_on) {
      dai = clip_to(dai, clip); daf = clip_to(daf, clip);
      dag = clip_to(dag, clip); dao = clip_to(dao, clip);
    }
    dc_carry[l] = dc * f;                                 // reaches c_{t-1}
    ai[l] = dai; af[l] = daf; ag[l] = dag; ao[l] = dao;
  }
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
inline void backward_products(const BackwardArgs<T>& a, const BackwardPlan& p, T* work, bool to_dx, int64_t k0,
                              int64_t t, int64_t b0) {
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
      for (int v = 0; v < NV; ++v) acc[r][v].store(work + p.dhl + k * NL + v * W);
    } else {
      alignas(64) T lanes_out[NL];
      for (int v = 0; v < NV; ++v) acc[r][v].store(lanes_out + v * W);
      const int64_t nb = (p.B - b0 < NL) ? p.B - b0 : NL;
      for (int64_t l = 0; l < nb; ++l) a.dx[((b0 + l) * p.Tn + t) * p.I + k] = lanes_out[l];
    }
  }
}

template <typename T, int NV>
void backward_block(const BackwardArgs<T>& a, const BackwardPlan& p, T* work, int64_t b0) {
  constexpr int64_t NL = NV * Vec<T>::W;
  const int64_t Tn = p.Tn, H = p.H, Bp = p.Bp, hist = Tn * Bp;
  const T* c_hist = a.cs;
  T* dyl = work + p.dyl;  // block-local rows of NL lanes, like dhl, dcl, c0l
  T* dhl = work + p.dhl;
  T* dcl = work + p.dcl;
  T* c0l = work + p.c0l;
  const int64_t nb = p.B - b0 < 0 ? 0 : (p.B - b0 < NL ? p.B - b0 : NL);  // real lanes of the block (may be 0)
  to_lanes(dhl, NL, a.dh_T && nb ? a.dh_T + b0 * H : nullptr, H, nb, NL, H);  // null: zeros
  to_lanes(dcl, NL, a.dc_T && nb ? a.dc_T + b0 * H : nullptr, H, nb, NL, H);
  if (a.c0) to_lanes(c0l, NL, nb ? a.c0 + b0 * H : nullptr, H, nb, NL, H);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    for (int64_t j = 0; j < H; ++j) {  // dy_t of this block's lanes
      T* d = dyl + j * NL;
      for (int64_t l = 0; l < NL; ++l) d[l] = (a.dy && l < nb) ? a.dy[((b0 + l) * Tn + t) * H + j] : T(0);
    }
    for (int64_t j = 0; j < H; ++j) {
      T* g = a.gates + j * hist + t * Bp + b0;
      const T* c = c_hist + j * hist + t * Bp + b0;
      const T* cp = t ? c - Bp : (a.c0 ? c0l + j * NL : nullptr);
      gate_math_backward<T>(g, g + H * hist, g + 2 * H * hist, g + 3 * H * hist, dcl + j * NL, dhl + j * NL,
                            dyl + j * NL, c, cp, NL, a.clip_on, a.clip);
    }
    for (int pass = 0; pass < (a.dx ? 2 : 1); ++pass) {
      const bool to_dx = pass == 1;
      const int64_t cols = to_dx ? p.I : H;
      int64_t k0 = 0;
      for (; k0 + 4 <= cols; k0 += 4) backward_products<T, 4, NV>(a, p, work, to_dx, k0, t, b0);
      for (; k0 < cols; ++k0) backward_products<T, 1, NV>(a, p, work, to_dx, k0, t, b0);
    }
  }
  if (nb > 0) {
    from_lanes(a.dh0 + b0 * H, H, dhl, NL, nb, H);
    from_lanes(a.dc0 + b0 * H, H, dcl, NL, nb, H);
  }
}

// C[m*ldc + n] += Σ_k A[m*lda + k] · Bm[n*ldb + k], k < K (a multiple of W).
template <typename T, int MB, int NB>
inline void reduce_nt_block(T* C, int64_t ldc, const T* A, int64_t lda, const T* Bm, int64_t ldb, int64_t K) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc[MB][NB];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < NB; ++j) acc[i][j] = V::zero();
  for (int64_t k = 0; k < K; k += W) {
    V x[MB], y[NB];
    for (int i = 0; i < MB; ++i) x[i] = V::load(A + i * lda + k);
    for (int j = 0; j < NB; ++j) y[j] = V::load(Bm + j * ldb + k);
    for (int i = 0; i < MB; ++i)
      for (int j = 0; j < NB; ++j) acc[i][j] = V::fma(x[i], y[j], acc[i][j]);
  }
  for (int i = 0; i < MB; ++i) {
    if constexpr (NB == 4) {
      T s[4];
      sum4<T>(acc[i][0], acc[i][1], acc[i][2], acc[i][3], s);
      for (int j = 0; j < 4; ++j) C[i * ldc + j] += s[j];
    } else {
      for (int j = 0; j < NB; ++j) C[i * ldc + j] += acc[i][j].sum();
    }
  }
}

template <typename T>
void reduce_nt(T* C, int64_t ldc, int64_t M, int64_t N, const T* A, int64_t lda, const T* Bm, int64_t ldb,
               int64_t K) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) reduce_nt_block<T, 4, 4>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, K);
    for (; n < N; ++n) reduce_nt_block<T, 4, 1>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, K);
  }
  for (; m < M; ++m) {
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) reduce_nt_block<T, 1, 4>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, K);
    for (; n < N; ++n) reduce_nt_block<T, 1, 1>(C + m * ldc + n, ldc, A + m * lda, lda, Bm + n * ldb, ldb, K);
  }
}

template <typename T>
void backward(const BackwardArgs<T>& a, Dims d) {
  const BackwardPlan p = backward_plan<T>(d, a.ids != nullptr);
  T* work = a.work;
  const int64_t B = d.B, Tn = d.T, I = d.I, H = d.H, G = 4 * H, Bp = p.Bp, hist = Tn * Bp;

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

  // Padding lanes hold values computed from zero inputs (NaN where a weight
  // is ±Inf): zero them before the sums over lanes.
  // (The forward zeroed them in the h history.)
  T* gates = a.gates;
  const T* h_hist = a.cs + H * hist;
  for (int64_t n = 0; n < G; ++n)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t b = B; b < Bp; ++b) gates[n * hist + t * Bp + b] = T(0);
  // db = Σ_(t,b) dG
  for (int64_t n = 0; n < G; ++n) {
    using V = Vec<T>;
    V s = V::zero();
    for (int64_t k = 0; k < hist; k += V::W) s = s + V::load(gates + n * hist + k);
    a.db[n] += s.sum();
  }
  // dW_hh = Σ_t dG_t · h_{t-1}ᵀ (the history keeps h_{t-1} at slot t: one product).
  reduce_nt(a.dW_hh, H, G, H, gates, hist, h_hist, hist, hist);
  if (a.ids) {
    for (int64_t n = 0; n < G; ++n)
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t b = 0; b < B; ++b) a.dW_ih[n * I + a.ids[b * Tn + t]] += gates[n * hist + t * Bp + b];
  } else {
    x_to_lanes(work + p.xl, a.x, d, Bp);
    reduce_nt(a.dW_ih, I, G, I, gates, hist, work + p.xl, hist, hist);
  }
}

}  // namespace lanes
