// lstm_kernels.inl: forward and backward of one LSTM layer over a sequence,
// written once and compiled per ISA (included inside an ISA namespace after
// simd.h and gemm.inl). Layout and equations: see lstm.h.

#include "gemm.inl"
#include "step_product.inl"

// libm calls wrapped in this ISA's namespace: an inline function from a
// system header, compiled here with AVX flags, could otherwise be the copy
// the linker keeps for the portable path too.
inline float k_exp(float a) { return ::expf(a); }
inline double k_exp(double a) { return ::exp(a); }
inline float k_tanh(float a) { return ::tanhf(a); }
inline double k_tanh(double a) { return ::tanh(a); }

template <typename T>
inline T sigmoid(T a) { return T(1) / (T(1) + k_exp(-a)); }

// Elementwise clip that lets NaN through (a NaN gradient must stay visible).
template <typename T>
inline T clip_to(T v, T c) { return v > c ? c : (v < -c ? -c : v); }

// One hidden unit's gate math, scalar: the formulas every path shares (the
// vector paths, gates_forward_lanes and gates_backward_lanes, mirror them).
// Forward: pre-activations in, activations out; writes c_t and h_t.
template <typename T>
inline void gate_forward_unit(T& ai, T& af, T& ag, T& ao, T c_prev, T& c, T& h) {
  const T i = sigmoid(ai), f = sigmoid(af), g = k_tanh(ag), o = sigmoid(ao);
  const T ct = f * c_prev + i * g;  // c_t = f⊙c_{t-1} + i⊙g
  ai = i; af = f; ag = g; ao = o;
  c = ct;
  h = o * k_tanh(ct);               // h_t = o⊙tanh(c_t)
}
// Backward: activations in, pre-activation gradients dG out (clipped when
// asked: the clipped value is what flows on); dh is the whole gradient
// reaching h_t, dc_in the one reaching c_t from t+1. Returns the gradient
// reaching c_{t-1}.
template <typename T>
inline T gate_backward_unit(T& ai, T& af, T& ag, T& ao, T dc_in, T dh, T c, T c_prev, bool clip_on, T clip) {
  const T i = ai, f = af, g = ag, o = ao;
  const T tc = k_tanh(c);
  const T dc = dc_in + dh * o * (T(1) - tc * tc);  // through h_t = o⊙tanh(c_t)
  T dai = dc * g * (i * (T(1) - i));               // dL/da_i = dc·g·σ'
  T daf = dc * c_prev * (f * (T(1) - f));          // dL/da_f = dc·c_{t-1}·σ'
  T dag = dc * i * (T(1) - g * g);                 // dL/da_g = dc·i·tanh'
  T dao = dh * tc * (o * (T(1) - o));              // dL/da_o = dh·tanh(c_t)·σ'
  if (clip_on) {
    dai = clip_to(dai, clip); daf = clip_to(daf, clip);
    dag = clip_to(dag, clip); dao = clip_to(dao, clip);
  }
  ai = dai; af = daf; ag = dag; ao = dao;
  return dc * f;                                   // reaches c_{t-1}
}

inline int team_size(Dims d, int nthreads) { return team_size_rule(d, nthreads); }

// Whether the recurrent product uses the unpacked few-rows path.
inline bool few_rows(int64_t M) { return M < 4; }
// Few-rows products of depth below one vector go through a transposed copy
// (an axpy per k) instead of dot products that would be all scalar tail.
template <typename T>
inline bool short_rows(int64_t K) { return K < Vec<T>::W; }

// Whether the forward's recurrent product reads W_hh in place
// (step_product.inl): in a training forward (one that keeps a cache), with
// a packed W_hhᵀ that would not stay in L2 and at most 32 batch rows in at
// most two panels of the micro-kernel. There it runs as fast as the packed
// product and saves the copy, a training step's largest allocation beside
// its cache (T=50, B=32, I=H=1024, 1 thread: AVX-512, one panel, 76.0
// against 76.7 ms a forward; AVX2, two panels of 16 rows, training steps
// 1.003× the packed ones). With 64 rows (two AVX-512 panels at H = 512) each
// row of W_hh is read twice per step, and the packed product was 5-8%
// faster. An inference forward keeps the packed copy: its product ran 4-8%
// faster with it (77-85 against 74-75 ms at 1024).
template <typename T>
inline bool recurrent_in_place(Dims d, bool cache) {
  return cache && !few_rows(d.B) && d.B <= 32 && d.B <= 2 * Tile<T>::NR &&
         d.H * padded_cols<T>(4 * d.H) > kL2Floats;
}

// Sanitizer builds leave a poisoned gap after each part of a workspace, so
// that a part outgrowing its size is reported (the parts share one
// allocation: AddressSanitizer alone sees only the end of the whole).
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kRedZone = 64;  // elements
template <typename T>
void poison_red_zones(T* work, std::initializer_list<int64_t> ends, bool poison) {
  for (int64_t end : ends) {  // a red zone [end, end + kRedZone), its whole 8-byte granules
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(work + end) + 7) / 8 * 8;
    const uintptr_t hi = reinterpret_cast<uintptr_t>(work + end + kRedZone) / 8 * 8;
    if (poison)
      ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(lo), hi - lo);
    else
      ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(lo), hi - lo);
  }
}
#else
constexpr int64_t kRedZone = 0;
#endif

// h_{t-1} for row k = b*T + t of the batch-first sequence (null = zero state).
template <typename T>
struct PrevHidden {
  const T* y;
  const T* h0;
  int64_t T_, H;
  const T* row(int64_t k) const {
    if (k % T_ != 0) return y + (k - 1) * H;
    return h0 ? h0 + (k / T_) * H : nullptr;
  }
  int64_t col_stride() const { return 1; }
};

// ---------------------------------------------------------------- forward --

// Per-thread A-block size for the forward's products (0 when none packs).
template <typename T>
int64_t forward_apack_stride(Dims d) {
  const bool few_rec = few_rows(d.B), few_in = few_rows(d.B * d.T);
  const int64_t rows = few_in ? (few_rec ? 0 : d.B) : d.B * d.T;
  const int64_t depth = few_in ? (few_rec ? 0 : d.H) : (few_rec ? d.I : (d.I > d.H ? d.I : d.H));
  return apack_stride<T>(rows, depth);
}

// Workspace layout of forward_team: [W_hh packed | W_ih block | bias | cell
// state | A blocks], a red zone after all but the first part (kRedZone: 0
// but in sanitizer builds); parts a call does not use (batch-1 steps) have
// size zero, so a generation step allocates almost nothing.
struct ForwardWork {
  int64_t wpack, bpack, bias, cstate, apack;
  int64_t bias_at() const { return wpack + bpack + kRedZone; }
  int64_t cstate_at() const { return bias_at() + bias + kRedZone; }
  int64_t apack_at() const { return cstate_at() + cstate + kRedZone; }
  int64_t total() const { return apack_at() + apack + kRedZone; }
};
template <typename T>
ForwardWork forward_work(Dims d, int nthreads, bool cache) {
  const int64_t G = 4 * d.H;
  const bool few_rec = few_rows(d.B), few_in = few_rows(d.B * d.T);
  ForwardWork w;
  // W_hhᵀ packed once per call; for batch-1 steps with H below a vector, W_hhᵀ plain (short_rows);
  // read in place, h_{t-1}ᵀ packed per step instead (step_product.inl).
  w.wpack = few_rec ? (short_rows<T>(d.H) ? d.H * G : 0) : d.H * padded_cols<T>(G);
  constexpr int64_t NR = Tile<T>::NR;
  if (recurrent_in_place<T>(d, cache)) w.wpack = d.H * ((d.B + NR - 1) / NR * NR);  // its panels (at most two)
  // The input projection runs before the time loop writes y or packs W_hh: it packs W_ihᵀ into the
  // larger of their rooms, and only what both lack of the room it needs is added here.
  const int64_t need = few_in ? 0 : gemm_min_room<T>(G, d.I);
  const int64_t lent = d.B * d.T * d.H;             // y's room
  w.bpack = (need > w.wpack && need > lent) ? need - w.wpack : 0;
  w.bias = padded_cols<T>(G);                       // b_ih + b_hh, zero padded
  w.cstate = cache ? 0 : d.B * d.H;                 // running cell state (inference)
  w.apack = static_cast<int64_t>(team_size(d, nthreads)) * forward_apack_stride<T>(d);
  return w;
}
template <typename T>
int64_t forward_workspace_elems(Dims d, int nthreads, bool cache) {
  return forward_work<T>(d, nthreads, cache).total();
}

#if defined(PYLSTM_VECTOR_MATH)
// W hidden units of one row's gate math, in vectors. ai/af/ag/ao: the gate
// blocks (pre-activations in, activations out unless !keep: an inference
// call keeps none); cp: c_{t-1} (null = zeros).
inline void gates_forward_lanes(float* ai, float* af, float* ag, float* ao, const float* cp, float* c_out,
                                float* h_out, bool keep = true) {
  using V = Vec<float>;
  const V i = vsigmoid(V::load(ai)), f = vsigmoid(V::load(af));
  const V g = vtanh(V::load(ag)), o = vsigmoid(V::load(ao));
  const V c = V::fma(f, cp ? V::load(cp) : V::zero(), i * g);  // c_t = f⊙c_{t-1} + i⊙g
  if (keep) {
    i.store(ai); f.store(af); g.store(ag); o.store(ao);
  }
  c.store(c_out);
  (o * vtanh(c)).store(h_out);                                  // h_t = o⊙tanh(c_t)
}
#endif

// One time step's fused gate math for batch row b: pre-activations in `a`
// (4H) become activations in place; writes c_t, h_t. `next_a` and
// `next_c` (when not null): the next row's pre-activations and c_{t-1},
// asked for vector by vector meanwhile. At H = 512 the step's product
// streams 4 MiB of W_hhᵀ through a 2 MiB L2, so the pre-activations it wrote
// are back in L3 by the time the gate math reads them: the loads stalled
// (a third of the forward's gate math samples on the two first loads).
// `keep` false (inference): the activations need not be written back.
template <typename T>
inline void gates_forward_row(T* a, T* c_out, T* h_out, const T* c_prev, int64_t H,
                              [[maybe_unused]] const T* next_a = nullptr,  // (hints: the portable path has none)
                              [[maybe_unused]] const T* next_c = nullptr, [[maybe_unused]] bool keep = true) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    constexpr int W = Vec<float>::W;
    int64_t j = 0;
    for (; j + W <= H; j += W) {
      if (next_a) {
        for (int q = 0; q < 4; ++q) __builtin_prefetch(next_a + q * H + j);
        if (next_c) __builtin_prefetch(next_c + j);
      }
      gates_forward_lanes(a + j, a + H + j, a + 2 * H + j, a + 3 * H + j, c_prev ? c_prev + j : nullptr,
                          c_out + j, h_out + j, keep);
    }
    if (j < H) {  // the last H % W units, through a zero-padded copy
      const int64_t n = H - j;
      float buf[7][W] = {};
      for (int64_t l = 0; l < n; ++l) {
        for (int q = 0; q < 4; ++q) buf[q][l] = a[q * H + j + l];
        buf[4][l] = c_prev ? c_prev[j + l] : 0.0f;
      }
      gates_forward_lanes(buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]);
      for (int64_t l = 0; l < n; ++l) {
        for (int q = 0; q < 4; ++q) a[q * H + j + l] = buf[q][l];
        c_out[j + l] = buf[5][l];
        h_out[j + l] = buf[6][l];
      }
    }
    return;
  }
#endif
  for (int64_t j = 0; j < H; ++j)
    gate_forward_unit(a[j], a[H + j], a[2 * H + j], a[3 * H + j], c_prev ? c_prev[j] : T(0), c_out[j], h_out[j]);
}

// Small H: a row has fewer hidden units than a vector has lanes, so the gate
// math of several batch rows is gathered into contiguous lanes, done in full
// vectors, and scattered back. Which path runs depends on H only.
static constexpr int64_t kStageLanes = 512;  // hidden units gathered per chunk

template <typename T>
inline bool use_staging(int64_t H) {
#if defined(PYLSTM_VECTOR_MATH)
  return std::is_same_v<T, float> && H < 4 * Vec<float>::W;
#else
  (void)H;
  return false;
#endif
}
inline int64_t staging_rows(int64_t H) { return kStageLanes / H > 0 ? kStageLanes / H : 1; }

template <typename T, typename Cell>
inline void gates_forward_staged(const ForwardArgs<T>& a, const Cell& cell, int64_t b0, int64_t b1, int64_t t,
                                 int64_t Tn, int64_t H) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    constexpr int W = Vec<float>::W;
    alignas(64) float s[7][kStageLanes + 4 * W];
    const int64_t G = 4 * H;
    int64_t n = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const float* g = a.gates + (b * Tn + t) * G;
      const float* c_prev;
      float* c_out;
      cell(b, c_prev, c_out);
      for (int q = 0; q < 4; ++q)
        for (int64_t j = 0; j < H; ++j) s[q][n + j] = g[q * H + j];
      if (c_prev)
        for (int64_t j = 0; j < H; ++j) s[4][n + j] = c_prev[j];
      else
        for (int64_t j = 0; j < H; ++j) s[4][n + j] = 0.0f;
      n += H;
    }
    for (int64_t m = n; m % W; ++m)
      for (int q = 0; q < 5; ++q) s[q][m] = 0.0f;
    for (int64_t l = 0; l < n; l += W)
      gates_forward_lanes(s[0] + l, s[1] + l, s[2] + l, s[3] + l, s[4] + l, s[5] + l, s[6] + l);
    n = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = b * Tn + t;
      float* g = a.gates + r * G;
      const float* c_prev;
      float* c_out;
      cell(b, c_prev, c_out);
      if (a.cs)  // (an inference call keeps no activations)
        for (int q = 0; q < 4; ++q)
          for (int64_t j = 0; j < H; ++j) g[q * H + j] = s[q][n + j];
      for (int64_t j = 0; j < H; ++j) c_out[j] = s[5][n + j];
      for (int64_t j = 0; j < H; ++j) a.y[r * H + j] = s[6][n + j];
      n += H;
    }
    return;
  }
#endif
  (void)a; (void)cell; (void)b0; (void)b1; (void)t; (void)Tn; (void)H;
}

// Inference with an input (not ids): the input projection runs a few steps
// at a time (C = bias + x·W_ihᵀ for steps [t, t+tc), then += h_{t-1}·W_hhᵀ
// per step) into a small buffer, instead of for all steps at once into the
// whole gates array. No cache is kept, so the gates array is free room: the
// packed W_ihᵀ and the buffers go at its start, and the rest of it is never
// touched (no page faults, no pass of the whole array through memory).
// tc·B is about 128 rows, so each pass over the packed W_ihᵀ serves that
// many rows. Needs the room, and rows for the packed products; small H keeps
// its staged gate math. A large W_ihᵀ (over 2M values: I = H = 1024, 16 MB)
// streamed again for every chunk measured 9% slower than the one
// whole-sequence product, and keeps the old path.
struct StepwiseInput {
  int64_t steps;       // tc: steps per chunk (0: not this path)
  int64_t wih, x, c;   // offsets in the gates array: packed W_ihᵀ, the chunk's x rows (tc > 1), its C
};
template <typename T>
inline StepwiseInput forward_stepwise(const ForwardArgs<T>& a, Dims d) {
  const int64_t G = 4 * d.H;
  StepwiseInput s{0, 0, 0, 0};
  if (a.cs != nullptr || a.ids != nullptr || few_rows(d.B) || use_staging<T>(d.H)) return s;
  if (d.I * padded_cols<T>(G) > (int64_t(1) << 21)) return s;
  const int64_t tc = d.B >= 128 ? 1 : (128 / d.B < d.T ? 128 / d.B : d.T);
  s.x = d.I * padded_cols<T>(G);
  s.c = s.x + (tc > 1 ? tc * d.B * d.I : 0);
  if (s.c + tc * d.B * G <= d.B * d.T * G) s.steps = tc;
  return s;
}

// A zero initial state contributes 0·W_hh, which IEEE makes NaN wherever a
// row of W_hh holds NaN or ±Inf: skipping that product must not hide them.
// g0: the first step's pre-activations, batch row b at g0 + b*ld.
template <typename T>
void poison_zero_state_rows(T* g0, int64_t ld, const T* W_hh, int64_t B, int64_t H) {
  constexpr int W = Vec<T>::W;
#pragma omp for schedule(static)
  for (int64_t n = 0; n < 4 * H; ++n) {
    const T* w = W_hh + n * H;
    // w·0 is 0 for finite values, NaN for NaN and ±Inf; summed in vectors
    // (the scalar scan was 1.3% of a forward at H = 1024).
    Vec<T> acc = Vec<T>::zero();
    int64_t k = 0;
    for (; k + W <= H; k += W) acc = Vec<T>::fma(Vec<T>::load(w + k), Vec<T>::zero(), acc);
    T sum = acc.sum();
    for (; k < H; ++k) sum += w[k] * T(0);
    const bool finite = sum == sum;
    if (!finite)
      for (int64_t b = 0; b < B; ++b) g0[b * ld + n] += std::numeric_limits<T>::quiet_NaN();
  }
}

template <typename T>
void forward_team(const ForwardArgs<T>& a, Dims d) {
  const int64_t B = d.B, Tn = d.T, I = d.I, H = d.H, G = 4 * H;
  const int64_t rows = B * Tn;
  const ForwardWork w = forward_work<T>(d, 1, a.cs != nullptr);  // offsets do not depend on the team (A blocks last)
  T* wpack = a.work;
  T* bias = a.work + w.bias_at();
  T* cstate = a.work + w.cstate_at();
  const APack<T> apack{a.work + w.apack_at(), forward_apack_stride<T>(d)};
  const StepwiseInput sw = forward_stepwise<T>(a, d);
  const bool stepwise = sw.steps > 0;
  T* wihpack = a.gates + sw.wih;                // stepwise: W_ihᵀ packed (I × Gpad)
  T* xchunk = a.gates + sw.x;                   // stepwise: x rows of the chunk (tc, B, I)
  T* cchunk = a.gates + sw.c;                   // stepwise: pre-activations of the chunk (tc, B, 4H)
  const int64_t gld = stepwise ? G : Tn * G;    // row stride of one step's gates
  PYLSTM_PHASE_START();

  // 1. gates = x·W_ihᵀ + (b_ih + b_hh) for every step at once (stepwise:
  // W_ihᵀ packed, the products come in the time loop).
#pragma omp for schedule(static)
  for (int64_t n = 0; n < padded_cols<T>(G); ++n) bias[n] = n < G ? a.b_ih[n] + a.b_hh[n] : T(0);
  if (stepwise) {
    pack_b_full<T>(wihpack, Strided<T>{a.W_ih, 1, I}, I, G);
  } else if (a.ids || few_rows(rows)) {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      T* g = a.gates + r * G;
      if (a.ids) {
        const int64_t id = a.ids[r];  // ids path: gather column `id` of W_ih
        for (int64_t n = 0; n < G; ++n) g[n] = bias[n] + a.W_ih[n * I + id];
      } else {
        for (int64_t n = 0; n < G; ++n) g[n] = bias[n];
      }
    }
    if (!a.ids) gemm_few_rows<T>(a.gates, G, rows, G, I, a.x, I, a.W_ih, I, true);
  } else {
    // W_hh is not packed yet and y not written: the larger of their rooms
    // (W_hh's and the block's are adjacent) holds W_ihᵀ, or as much of it
    // as fits, for a rows-first product. (Where the workspace holds all of
    // it, its pages are the ones already in use.)
    T* room = wpack;
    int64_t room_elems = w.wpack + w.bpack;
    if (room_elems < I * padded_cols<T>(G) && rows * H > room_elems) {
      room = a.y;
      room_elems = rows * H;
    }
    gemm<T>(a.gates, G, rows, G, I, a.x, I, 1, Strided<T>{a.W_ih, 1, I}, false, room, apack, bias, room_elems);
  }
  if (!a.h0 && !stepwise) poison_zero_state_rows(a.gates, gld, a.W_hh, B, H);
  PYLSTM_PHASE(0, "forward: input projection");
  // 2. W_hhᵀ packed once for all T steps: B(k, n) = W_hh[n, k].
  const bool few = few_rows(B);
  const bool axpy = few && short_rows<T>(H);
  const bool in_place = recurrent_in_place<T>(d, a.cs != nullptr);
  if (!few && !in_place) pack_b_full<T>(wpack, Strided<T>{a.W_hh, 1, H}, H, G);
  if (axpy) {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t n = 0; n < G; ++n) wpack[k * G + n] = a.W_hh[n * H + k];
  }
  PYLSTM_PHASE(1, "forward: pack W_hh");

  // 3. The time loop: h_{t-1}·W_hhᵀ (stepwise: and x_t·W_ihᵀ) and the gate math.
  // Both split the batch rows alike where the product splits rows at all
  // (per_step_thread_rows): a thread's gate math then reads what it computed.
  const int64_t thread_rows = few ? 0 : per_step_thread_rows<T>(B, G, H);
  const int64_t gate_rows = thread_rows > 0 ? thread_rows : 1;  // batch rows per gate-math task
  // (stepwise: the input products' rows too, where W_ihᵀ fits as W_hhᵀ does and blocks stay within steps)
  const int64_t input_rows =
      (stepwise && B % gate_rows == 0 && per_step_thread_rows<T>(B, G, I) == thread_rows) ? thread_rows : 0;
  for (int64_t t = 0; t < Tn; ++t) {
    T* gt = stepwise ? cchunk + (t % sw.steps) * B * G : a.gates + t * G;  // row b at gt + b*gld
    const T* hprev = t ? a.y + (t - 1) * H : a.h0;  // row b at hprev + b*hstride
    const int64_t hstride = t ? Tn * H : H;
    if (stepwise && t % sw.steps == 0) {
      const int64_t tc = (Tn - t < sw.steps) ? Tn - t : sw.steps;
      if (tc == 1) {
        gemm_prepacked<T>(cchunk, G, B, G, I, a.x + t * I, Tn * I, 1, wihpack, false, apack, bias, input_rows);
      } else {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < tc * B; ++r) {  // row (s, b) of the chunk = x[b, t + s]
          const T* src = a.x + ((r % B) * Tn + t + r / B) * I;
          for (int64_t k = 0; k < I; ++k) xchunk[r * I + k] = src[k];
        }
        gemm_prepacked<T>(cchunk, G, tc * B, G, I, xchunk, I, 1, wihpack, false, apack, bias, input_rows);
      }
      if (!a.h0 && t == 0) poison_zero_state_rows(cchunk, gld, a.W_hh, B, H);
      PYLSTM_PHASE(2, "forward: step input product");
    }
    if (hprev) {
      if (axpy)
        gemm_few_rows_nn<T>(gt, gld, B, G, H, hprev, hstride, wpack, G, true);
      else if (few)
        gemm_few_rows<T>(gt, gld, B, G, H, hprev, hstride, a.W_hh, H, true);
      else if (in_place) {
        pack_rows_transposed<T>(wpack, hprev, hstride, B, H);  // ends in a barrier
        gemm_transposed_in_place<T>(gt, gld, B, G, H, a.W_hh, wpack);
      } else
        gemm_prepacked<T>(gt, gld, B, G, H, hprev, hstride, 1, wpack, true, apack, nullptr, thread_rows);
    }
    PYLSTM_PHASE(3, "forward: step recurrent product");
    // Where c_{t-1} and c_t live for batch row b (null c_{t-1} = zeros).
    auto cell = [&](int64_t b, const T*& c_prev, T*& c_out) {
      const int64_t r = b * Tn + t;
      if (a.cs) {
        c_prev = t ? a.cs + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
        c_out = a.cs + r * H;
      } else {
        c_prev = t ? cstate + b * H : (a.c0 ? a.c0 + b * H : nullptr);
        c_out = cstate + b * H;
      }
    };
    if (use_staging<T>(H)) {
      const int64_t chunk = staging_rows(H);
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < B; b0 += chunk)
        gates_forward_staged(a, cell, b0, (b0 + chunk < B) ? b0 + chunk : B, t, Tn, H);
    } else {
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < B; b0 += gate_rows)
        for (int64_t b = b0; b < b0 + gate_rows && b < B; ++b) {
          const T* c_prev;
          T* c_out;
          cell(b, c_prev, c_out);
          const T* next_c = nullptr;  // (the next row may be another thread's: a prefetch costs no more)
          T* unused;
          if (b + 1 < B) cell(b + 1, next_c, unused);
          gates_forward_row(gt + b * gld, c_out, a.y + (b * Tn + t) * H, c_prev, H,
                            b + 1 < B ? gt + (b + 1) * gld : nullptr, next_c, a.cs != nullptr);
        }
    }
    PYLSTM_PHASE(4, "forward: step gate math");
  }
  // 4. Final state.
#pragma omp for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = b * Tn + (Tn - 1);
    const T* c_last = a.cs ? a.cs + r * H : cstate + b * H;
    for (int64_t j = 0; j < H; ++j) {
      a.h_T[b * H + j] = a.y[r * H + j];
      a.c_T[b * H + j] = c_last[j];
    }
  }
  PYLSTM_PHASE(5, "forward: final state");
}

// --------------------------------------------------------------- backward --

// Workspace layout of backward_team: [W_hh packed | one block of B | dh, dc
// carried | A blocks]. The packed W_hh (G × H) goes into dW_hh's room
// instead where it fits there: dW_hh is written only after the time loop
// (16 MiB at H = 1024, half of the cache at T = 50, B = 32, that the step
// need not hold twice). After the loop, the products pack their B operands
// into rooms the call lends: dW_hh's (until dW_hh, the last product, is
// written) and the cell states' (the cache is used up by then). Every
// product's rows and depth are at most max(4H, B·T).
struct BackwardWork {  // (red zones as in ForwardWork)
  int64_t wpack, bpack, carry, apack_stride, apack;
  int64_t carry_at() const { return wpack + bpack + kRedZone; }
  int64_t apack_at() const { return carry_at() + carry + kRedZone; }
  int64_t total() const { return apack_at() + apack + kRedZone; }
};
template <typename T>
inline bool pack_whh_in_dW_hh(Dims d) { return padded_cols<T>(d.H) == d.H; }
template <typename T>
BackwardWork backward_work(Dims d, int nthreads, bool ids) {
  const int64_t H = d.H, I = d.I, G = 4 * H, rows = d.B * d.T;
  const int64_t longest = rows > G ? rows : G;
  BackwardWork w;
  w.wpack = (few_rows(d.B) || pack_whh_in_dW_hh<T>(d)) ? 0 : G * padded_cols<T>(H);  // B(k, n) = W_hh[k, n]
  // The room each product after the loop needs (gemm_min_room), where the one it is lent is smaller
  // (the packed W_hh's, free by then, is the workspace's: only what it lacks is added).
  const int64_t whh_room = G * H, cs_room = rows * H;
  int64_t need = gemm_min_room<T>(H, rows);  // dW_hh: N = H, K = B·T
  if (need <= cs_room || need <= w.wpack) need = 0;
  if (!ids) {  // dW_ih (K = B·T) and dx (K = 4H), N = I
    const int64_t r1 = gemm_min_room<T>(I, rows), r2 = gemm_min_room<T>(I, G), r = r1 > r2 ? r1 : r2;
    if (r > whh_room && r > w.wpack && r > need) need = r;
  }
  w.bpack = need > w.wpack ? need - w.wpack : 0;
  w.carry = 2 * d.B * H;                             // carried dh and dc
  w.apack_stride = apack_stride<T>(longest, longest);
  w.apack = static_cast<int64_t>(team_size(d, nthreads)) * w.apack_stride;
  return w;
}
template <typename T>
int64_t backward_workspace_elems(Dims d, int nthreads, bool ids) {
  return backward_work<T>(d, nthreads, ids).total();
}

// One time step's gate backward for batch row b: activations in `a` (4H)
// become the pre-activation gradients dG in place; dh_carry is the gradient
// reaching h_t from above (t+1), dc_carry is updated to reach c_{t-1}.
#if defined(PYLSTM_VECTOR_MATH)
// W hidden units of one row's gate backward, in vectors: activations in
// ai..ao become the pre-activation gradients; the carried dc is read from
// dc_in and written to dc_out (the same place, or c's: every load comes first).
inline void gates_backward_lanes(float* ai, float* af, float* ag, float* ao, const float* dc_in, float* dc_out,
                                 const float* dh_carry, const float* dy, const float* c, const float* cp,
                                 bool clip_on, float clip) {
  using V = Vec<float>;
  const V one = V::set1(1.0f);
  const V i = V::load(ai), f = V::load(af), g = V::load(ag), o = V::load(ao);
  const V tc = vtanh(V::load(c));
  const V dh = dy ? V::load(dh_carry) + V::load(dy) : V::load(dh_carry);
  const V dc = V::fma(dh * o, one - tc * tc, dc_in ? V::load(dc_in) : V::zero());  // through h_t = o⊙tanh(c_t)
  const V c_prev = cp ? V::load(cp) : V::zero();
  V dai = (dc * g) * (i * (one - i));       // dL/da_i = dc·g·σ'
  V daf = (dc * c_prev) * (f * (one - f));  // dL/da_f = dc·c_{t-1}·σ'
  V dag = (dc * i) * (one - g * g);         // dL/da_g = dc·i·tanh'
  V dao = (dh * tc) * (o * (one - o));      // dL/da_o = dh·tanh(c_t)·σ'
  if (clip_on) {  // min/max with the value second: NaN stays NaN
    const V hi = V::set1(clip), lo = V::set1(-clip);
    dai = V::min(hi, V::max(lo, dai)); daf = V::min(hi, V::max(lo, daf));
    dag = V::min(hi, V::max(lo, dag)); dao = V::min(hi, V::max(lo, dao));
  }
  (dc * f).store(dc_out);                   // reaches c_{t-1}
  dai.store(ai); daf.store(af); dag.store(ag); dao.store(ao);
}
#endif

// One time step's gate backward for batch row b: activations in `a` (4H)
// become the pre-activation gradients dG in place; dh_carry is the gradient
// reaching h_t from above (t+1), dc_carry is updated to reach c_{t-1}.
template <typename T>
inline void gates_backward_row(T* a, T* dc_carry, const T* dh_carry, const T* dy_row, const T* c_row,
                               const T* c_prev, int64_t H, bool clip_on, T clip,
                               [[maybe_unused]] const T* next_a = nullptr,  // (hints: the portable path has none)
                               [[maybe_unused]] const T* next_dy = nullptr,
                               [[maybe_unused]] const T* next_c = nullptr) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    constexpr int W = Vec<float>::W;
    int64_t j = 0;
    for (; j + W <= H; j += W) {
      if (next_a) {  // the next row's activations, dy and cell states (as gates_forward_row does)
        for (int q = 0; q < 4; ++q) __builtin_prefetch(next_a + q * H + j, 1);
        if (next_dy) __builtin_prefetch(next_dy + j);
        __builtin_prefetch(next_c + j);
        __builtin_prefetch(next_c - H + j);
      }
      gates_backward_lanes(a + j, a + H + j, a + 2 * H + j, a + 3 * H + j, dc_carry + j, dc_carry + j,
                           dh_carry + j, dy_row ? dy_row + j : nullptr, c_row + j, c_prev ? c_prev + j : nullptr,
                           clip_on, clip);
    }
    if (j < H) {  // the last H % W units, through a zero-padded copy
      const int64_t n = H - j;
      float buf[9][W] = {};
      for (int64_t l = 0; l < n; ++l) {
        for (int q = 0; q < 4; ++q) buf[q][l] = a[q * H + j + l];
        buf[4][l] = dc_carry[j + l];
        buf[5][l] = dh_carry[j + l];
        buf[6][l] = dy_row ? dy_row[j + l] : 0.0f;
        buf[7][l] = c_row[j + l];
        buf[8][l] = c_prev ? c_prev[j + l] : 0.0f;
      }
      gates_backward_lanes(buf[0], buf[1], buf[2], buf[3], buf[4], buf[4], buf[5], buf[6], buf[7], buf[8], clip_on,
                           clip);
      for (int64_t l = 0; l < n; ++l) {
        for (int q = 0; q < 4; ++q) a[q * H + j + l] = buf[q][l];
        dc_carry[j + l] = buf[4][l];
      }
    }
    return;
  }
#endif
  for (int64_t j = 0; j < H; ++j)
    dc_carry[j] = gate_backward_unit(a[j], a[H + j], a[2 * H + j], a[3 * H + j], dc_carry[j],
                                     dh_carry[j] + (dy_row ? dy_row[j] : T(0)), c_row[j],
                                     c_prev ? c_prev[j] : T(0), clip_on, clip);
}

template <typename T>
inline void gates_backward_staged(const BackwardArgs<T>& a, T* dc_carry, const T* dh_carry, int64_t b0, int64_t b1,
                                  int64_t t, int64_t Tn, int64_t H) {
#if defined(PYLSTM_VECTOR_MATH)
  if constexpr (std::is_same_v<T, float>) {
    constexpr int W = Vec<float>::W;
    alignas(64) float s[9][kStageLanes + 4 * W];
    const int64_t G = 4 * H;
    int64_t n = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r = b * Tn + t;
      const float* g = a.gates + r * G;
      const float* c_prev = t ? a.cs + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
      for (int q = 0; q < 4; ++q)
        for (int64_t j = 0; j < H; ++j) s[q][n + j] = g[q * H + j];
      for (int64_t j = 0; j < H; ++j) s[4][n + j] = dc_carry[b * H + j];
      for (int64_t j = 0; j < H; ++j) s[5][n + j] = dh_carry[b * H + j];
      if (a.dy)
        for (int64_t j = 0; j < H; ++j) s[6][n + j] = a.dy[r * H + j];
      else
        for (int64_t j = 0; j < H; ++j) s[6][n + j] = 0.0f;
      for (int64_t j = 0; j < H; ++j) s[7][n + j] = a.cs[r * H + j];
      if (c_prev)
        for (int64_t j = 0; j < H; ++j) s[8][n + j] = c_prev[j];
      else
        for (int64_t j = 0; j < H; ++j) s[8][n + j] = 0.0f;
      n += H;
    }
    for (int64_t m = n; m % W; ++m)
      for (int q = 0; q < 9; ++q) s[q][m] = 0.0f;
    for (int64_t l = 0; l < n; l += W)
      gates_backward_lanes(s[0] + l, s[1] + l, s[2] + l, s[3] + l, s[4] + l, s[4] + l, s[5] + l, s[6] + l, s[7] + l,
                           s[8] + l, a.clip_on, a.clip);
    n = 0;
    for (int64_t b = b0; b < b1; ++b) {
      float* g = a.gates + (b * Tn + t) * G;
      for (int q = 0; q < 4; ++q)
        for (int64_t j = 0; j < H; ++j) g[q * H + j] = s[q][n + j];
      for (int64_t j = 0; j < H; ++j) dc_carry[b * H + j] = s[4][n + j];
      n += H;
    }
    return;
  }
#endif
  (void)a; (void)dc_carry; (void)dh_carry; (void)b0; (void)b1; (void)t; (void)Tn; (void)H;
}

template <typename T>
void backward_team(const BackwardArgs<T>& a, Dims d) {
  const int64_t B = d.B, Tn = d.T, I = d.I, H = d.H, G = 4 * H;
  const int64_t rows = B * Tn;
  const BackwardWork w = backward_work<T>(d, 1, a.ids != nullptr);  // offsets do not depend on the team
  T* const room = a.work;                         // the workspace's room: W_hh packed or a block of B
  T* wpack = (few_rows(B) || w.wpack) ? room : a.dW_hh;
  T* dh_carry = room + w.carry_at();              // B × H
  T* dc_carry = dh_carry + B * H;                 // B × H
  const APack<T> apack{room + w.apack_at(), w.apack_stride};
  PYLSTM_PHASE_START();

#pragma omp for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      dh_carry[b * H + j] = a.dh_T ? a.dh_T[b * H + j] : T(0);
      dc_carry[b * H + j] = a.dc_T ? a.dc_T[b * H + j] : T(0);
    }
#pragma omp for schedule(static) nowait
  for (int64_t n = 0; n < G; ++n) a.db[n] = T(0);  // summed step by step (after the gate math's barrier)
  if (!few_rows(B)) pack_b_full<T>(wpack, Strided<T>{a.W_hh, H, 1}, G, H);
  PYLSTM_PHASE(10, "backward: start, pack W_hh");

  constexpr int64_t kChunk = 64;  // columns of db (and of the ids path's dW_ih) per task
  // The time loop in reverse: gate backward, then dh_{t-1} = dG_t · W_hh,
  // with the batch rows split alike where the product splits rows (as in the forward).
  const int64_t thread_rows = few_rows(B) ? 0 : per_step_thread_rows<T>(B, H, G);
  const int64_t gate_rows = thread_rows > 0 ? thread_rows : 1;
  for (int64_t t = Tn - 1; t >= 0; --t) {
    if (use_staging<T>(H)) {
      const int64_t chunk = staging_rows(H);
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < B; b0 += chunk)
        gates_backward_staged(a, dc_carry, dh_carry, b0, (b0 + chunk < B) ? b0 + chunk : B, t, Tn, H);
    } else {
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < B; b0 += gate_rows)
        for (int64_t b = b0; b < b0 + gate_rows && b < B; ++b) {
          const int64_t r = b * Tn + t, rn = r + Tn;  // rn: batch row b + 1 (which may be another thread's)
          const T* c_prev = t ? a.cs + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
          const bool next = b + 1 < B && t > 0;  // (next_c - H is c_{t-1} of row b + 1: needs t > 0)
          gates_backward_row(a.gates + r * G, dc_carry + b * H, dh_carry + b * H,
                             a.dy ? a.dy + r * H : nullptr, a.cs + r * H, c_prev, H, a.clip_on, a.clip,
                             next ? a.gates + rn * G : nullptr, next && a.dy ? a.dy + rn * H : nullptr,
                             next ? a.cs + rn * H : nullptr);
        }
    }
    PYLSTM_PHASE(11, "backward: step gate math");
    // db += Σ_b dG_t while dG_t is in cache (a pass over all of dG after the
    // loop read it back from memory: 7 ms at H = 512). Column chunks split
    // over threads, rows summed in a fixed order; nothing below writes dG_t
    // or db, so no barrier.
#pragma omp for schedule(static) nowait
    for (int64_t n0 = 0; n0 < G; n0 += kChunk) {
      const int64_t n1 = (n0 + kChunk < G) ? n0 + kChunk : G;
      for (int64_t b = 0; b < B; ++b) {
        const T* g = a.gates + (b * Tn + t) * G;
        for (int64_t n = n0; n < n1; ++n) a.db[n] += g[n];
      }
    }
    if (few_rows(B))
      gemm_few_rows_nn<T>(dh_carry, H, B, H, G, a.gates + t * G, Tn * G, a.W_hh, H);
    else
      gemm_prepacked<T>(dh_carry, H, B, H, G, a.gates + t * G, Tn * G, 1, wpack, false, apack, nullptr, thread_rows);
    PYLSTM_PHASE(12, "backward: step db + product");
  }
#pragma omp for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      a.dh0[b * H + j] = dh_carry[b * H + j];
      a.dc0[b * H + j] = dc_carry[b * H + j];
    }

  // Whole-sequence products after the loop, their B operands packed into
  // the larger of the workspace's room and the one lent (BackwardWork): dW_hh's
  // room for dW_ih and dx, then the cell states' for dW_hh.
  PYLSTM_PHASE(13, "backward: dh0, dc0");
  const int64_t room_elems = w.wpack + w.bpack;
  const bool lend_whh = G * H > room_elems, lend_cs = rows * H > room_elems;
  T* const room_a = lend_whh ? a.dW_hh : room;
  const int64_t room_a_elems = lend_whh ? G * H : room_elems;
  if (a.ids) {
    // dW_ih[:, id] = Σ dG rows: a scatter, rows of dW_ih split over threads.
#pragma omp for schedule(static)
    for (int64_t n0 = 0; n0 < G; n0 += kChunk) {
      const int64_t n1 = (n0 + kChunk < G) ? n0 + kChunk : G;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t v = 0; v < I; ++v) a.dW_ih[n * I + v] = T(0);
      for (int64_t r = 0; r < rows; ++r) {
        const T* g = a.gates + r * G;
        const int64_t id = a.ids[r];
        for (int64_t n = n0; n < n1; ++n) a.dW_ih[n * I + id] += g[n];
      }
    }
  } else {
    // dW_ih = dGᵀ · X ;  dx = dG · W_ih
    gemm<T>(a.dW_ih, I, G, I, rows, a.gates, 1, G, Strided<T>{a.x, I, 1}, false, room_a, apack, nullptr,
            room_a_elems);
    PYLSTM_PHASE(15, "backward: dW_ih");
    gemm<T>(a.dx, I, rows, I, G, a.gates, G, 1, Strided<T>{a.W_ih, I, 1}, false, room_a, apack, nullptr,
            room_a_elems);
    PYLSTM_PHASE(16, "backward: dx");
  }
  // dW_hh = dGᵀ · h_{t-1}   (A(m, k) = dG[k, m])
  gemm<T>(a.dW_hh, H, G, H, rows, a.gates, 1, G, PrevHidden<T>{a.y, a.h0, Tn, H}, false, lend_cs ? a.cs : room,
          apack, nullptr, lend_cs ? rows * H : room_elems);
  PYLSTM_PHASE(14, "backward: dW_hh");
}

// ------------------------------------------------------------ entries --

#include "lstm_lanes.inl"

// run_serially_when_alone: a team of one runs the *_team body outside any
// parallel region. Inside one, even an `if (false)` one, libgomp ends every
// `omp for` with a team barrier that makes a futex syscall: measured at ~30%
// of a small call (T=30, B=1, H=10). Outside a region the orphaned loops run
// plain, with no barrier.
template <typename T>
void forward(const ForwardArgs<T>& a, Dims d, int nthreads) {
  if (lanes_layout(d)) {
    lanes::forward<T>(a, d);
    return;
  }
  const int team = team_size(d, nthreads);
#if defined(__SANITIZE_ADDRESS__)
  const ForwardWork w = forward_work<T>(d, team, a.cs != nullptr);
  const auto zones = {w.bias_at() - kRedZone, w.cstate_at() - kRedZone, w.apack_at() - kRedZone,
                      w.total() - kRedZone};
  poison_red_zones(a.work, zones, true);
#endif
  if (team <= 1) {  // see run_serially_when_alone
    forward_team<T>(a, d);
  } else {
#pragma omp parallel num_threads(team)
    forward_team<T>(a, d);
  }
#if defined(__SANITIZE_ADDRESS__)
  poison_red_zones(a.work, zones, false);  // (the block may serve another call)
#endif
}

template <typename T>
void backward(const BackwardArgs<T>& a, Dims d, int nthreads) {
  if (lanes_layout(d)) {  // (it sums into the weight gradients)
    std::fill(a.dW_ih, a.dW_ih + 4 * d.H * d.I, T(0));
    std::fill(a.dW_hh, a.dW_hh + 4 * d.H * d.H, T(0));
    std::fill(a.db, a.db + 4 * d.H, T(0));
    lanes::backward<T>(a, d);
    return;
  }
  const int team = team_size(d, nthreads);
#if defined(__SANITIZE_ADDRESS__)
  const BackwardWork w = backward_work<T>(d, team, a.ids != nullptr);
  const auto zones = {w.carry_at() - kRedZone, w.apack_at() - kRedZone, w.total() - kRedZone};
  poison_red_zones(a.work, zones, true);
#endif
  if (team <= 1) {  // see run_serially_when_alone
    backward_team<T>(a, d);
  } else {
#pragma omp parallel num_threads(team)
    backward_team<T>(a, d);
  }
#if defined(__SANITIZE_ADDRESS__)
  poison_red_zones(a.work, zones, false);
#endif
}

template <typename T>
int64_t forward_work_elems(Dims d, int nthreads, bool cache, bool ids) {
  if (lanes_layout(d)) return lanes::forward_workspace_elems<T>(d, cache, ids);
  return forward_workspace_elems<T>(d, nthreads, cache);
}
template <typename T>
int64_t backward_work_elems(Dims d, int nthreads, bool ids) {
  if (lanes_layout(d)) return lanes::backward_workspace_elems<T>(d, ids);
  return backward_workspace_elems<T>(d, nthreads, ids);
}

template <typename T>
Kernels<T> make_kernels() {
  return Kernels<T>{&forward_work_elems<T>, &backward_work_elems<T>, &forward<T>,
                    &backward<T>};
}
