// lstm_kernels.inl: forward and backward of one LSTM layer over a sequence,
// written once and compiled per ISA (included inside an ISA namespace after
// simd.h and gemm.inl). Layout and equations: see lstm.h.

#include "gemm.inl"

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

// Threads pay for themselves only when each time step has enough work:
// below this many multiply-adds per step, the barrier costs more than it saves.
static constexpr int64_t kMinStepWorkPerThread = 16384;

inline int team_size(Dims d, int nthreads) {
  const int64_t step_work = d.B * 4 * d.H * (d.H + 1);
  if (nthreads <= 1 || step_work < 2 * kMinStepWorkPerThread) return 1;
  const int64_t useful = step_work / kMinStepWorkPerThread;
  return static_cast<int>(useful < nthreads ? useful : nthreads);
}

// Whether the recurrent product uses the unpacked few-rows path.
inline bool few_rows(int64_t M) { return M < 4; }

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

template <typename T>
int64_t forward_workspace_elems(Dims d, int) {
  const int64_t G = 4 * d.H;
  return d.H * padded_cols<T>(G)          // W_hhᵀ packed once per call
         + KC * padded_cols<T>(G)         // one block of W_ihᵀ for the input projection
         + d.B * d.H;                     // running cell state (inference path)
}

// One time step's fused gate math for batch row b: pre-activations in `a`
// (4H) become activations in place; writes c_t, h_t.
template <typename T>
inline void gates_forward_row(T* a, T* c_out, T* h_out, const T* c_prev, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = sigmoid(a[j]);
    const T f = sigmoid(a[H + j]);
    const T g = k_tanh(a[2 * H + j]);
    const T o = sigmoid(a[3 * H + j]);
    const T c = f * (c_prev ? c_prev[j] : T(0)) + i * g;  // c_t = f⊙c_{t-1} + i⊙g
    a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
    c_out[j] = c;
    h_out[j] = o * k_tanh(c);                          // h_t = o⊙tanh(c_t)
  }
}

template <typename T>
void forward_team(const ForwardArgs<T>& a, Dims d) {
  const int64_t B = d.B, Tn = d.T, I = d.I, H = d.H, G = 4 * H;
  const int64_t rows = B * Tn;
  T* wpack = a.work;                            // H × Npad(4H)
  T* bpack = wpack + H * padded_cols<T>(G);     // KC × Npad(4H)
  T* cstate = bpack + KC * padded_cols<T>(G);   // B × H

  // 1. gates = b_ih + b_hh, then += x·W_ihᵀ for every step at once.
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* g = a.gates + r * G;
    if (a.ids) {
      const int64_t id = a.ids[r];  // ids path: gather column `id` of W_ih
      for (int64_t n = 0; n < G; ++n) g[n] = (a.b_ih[n] + a.b_hh[n]) + a.W_ih[n * I + id];
    } else {
      for (int64_t n = 0; n < G; ++n) g[n] = a.b_ih[n] + a.b_hh[n];
    }
  }
  if (!a.ids) {
    if (few_rows(rows))
      gemm_few_rows<T>(a.gates, G, rows, G, I, a.x, I, a.W_ih, I, true);
    else
      gemm<T>(a.gates, G, rows, G, I, a.x, I, 1, Strided<T>{a.W_ih, 1, I}, true, bpack);
  }
  // 2. W_hhᵀ packed once for all T steps: B(k, n) = W_hh[n, k].
  const bool few = few_rows(B);
  if (!few) pack_b_full<T>(wpack, Strided<T>{a.W_hh, 1, H}, H, G);

  // 3. The time loop: only h_{t-1}·W_hhᵀ and the gate math inside.
  for (int64_t t = 0; t < Tn; ++t) {
    const T* hprev = t ? a.y + (t - 1) * H : a.h0;  // row b at hprev + b*hstride
    const int64_t hstride = t ? Tn * H : H;
    if (hprev) {
      if (few)
        gemm_few_rows<T>(a.gates + t * G, Tn * G, B, G, H, hprev, hstride, a.W_hh, H, true);
      else
        gemm_prepacked<T>(a.gates + t * G, Tn * G, B, G, H, hprev, hstride, 1, wpack, true);
    }
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t r = b * Tn + t;
      const T* c_prev;
      T* c_out;
      if (a.cs) {
        c_prev = t ? a.cs + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
        c_out = a.cs + r * H;
      } else {
        c_prev = t ? cstate + b * H : (a.c0 ? a.c0 + b * H : nullptr);
        c_out = cstate + b * H;
      }
      gates_forward_row(a.gates + r * G, c_out, a.y + r * H, c_prev, H);
    }
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
}

template <typename T>
void forward(const ForwardArgs<T>& a, Dims d, int nthreads) {
  const int team = team_size(d, nthreads);
  (void)team;
#pragma omp parallel num_threads(team) if (team > 1)
  forward_team<T>(a, d);
}

// --------------------------------------------------------------- backward --

template <typename T>
int64_t backward_workspace_elems(Dims d, int) {
  const int64_t H = d.H, I = d.I;
  const int64_t widest = padded_cols<T>(I) > padded_cols<T>(H) ? padded_cols<T>(I) : padded_cols<T>(H);
  return 4 * H * padded_cols<T>(H)   // W_hh packed once: B(k, n) = W_hh[k, n]
         + KC * widest                // one block of X or of h_{t-1} or of W_ih
         + 2 * d.B * H;               // carried dh and dc
}

// One time step's gate backward for batch row b: activations in `a` (4H)
// become the pre-activation gradients dG in place; dh_carry is the gradient
// reaching h_t from above (t+1), dc_carry is updated to reach c_{t-1}.
template <typename T>
inline void gates_backward_row(T* a, T* dc_carry, const T* dh_carry, const T* dy_row, const T* c_row,
                               const T* c_prev, int64_t H, T clip) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const T tc = k_tanh(c_row[j]);
    const T dh = dh_carry[j] + (dy_row ? dy_row[j] : T(0));
    const T dc = dc_carry[j] + dh * o * (T(1) - tc * tc);  // through h_t = o⊙tanh(c_t)
    const T cp = c_prev ? c_prev[j] : T(0);
    T dai = dc * g * i * (T(1) - i);        // dL/da_i = dc·g·σ'
    T daf = dc * cp * f * (T(1) - f);       // dL/da_f = dc·c_{t-1}·σ'
    T dag = dc * i * (T(1) - g * g);        // dL/da_g = dc·i·tanh'
    T dao = dh * tc * o * (T(1) - o);       // dL/da_o = dh·tanh(c_t)·σ'
    if (clip > T(0)) {
      dai = clip_to(dai, clip); daf = clip_to(daf, clip);
      dag = clip_to(dag, clip); dao = clip_to(dao, clip);
    }
    dc_carry[j] = dc * f;                   // reaches c_{t-1}
    a[j] = dai; a[H + j] = daf; a[2 * H + j] = dag; a[3 * H + j] = dao;
  }
}

template <typename T>
void backward_team(const BackwardArgs<T>& a, Dims d) {
  const int64_t B = d.B, Tn = d.T, I = d.I, H = d.H, G = 4 * H;
  const int64_t rows = B * Tn;
  T* wpack = a.work;                              // 4H × Npad(H)
  T* bpack = wpack + G * padded_cols<T>(H);       // KC × widest
  const int64_t widest = padded_cols<T>(I) > padded_cols<T>(H) ? padded_cols<T>(I) : padded_cols<T>(H);
  T* dh_carry = bpack + KC * widest;              // B × H
  T* dc_carry = dh_carry + B * H;                 // B × H

#pragma omp for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      dh_carry[b * H + j] = a.dh_T ? a.dh_T[b * H + j] : T(0);
      dc_carry[b * H + j] = a.dc_T ? a.dc_T[b * H + j] : T(0);
    }
  pack_b_full<T>(wpack, Strided<T>{a.W_hh, H, 1}, G, H);

  // The time loop in reverse: gate backward, then dh_{t-1} = dG_t · W_hh.
  for (int64_t t = Tn - 1; t >= 0; --t) {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t r = b * Tn + t;
      const T* c_prev = t ? a.cs + (r - 1) * H : (a.c0 ? a.c0 + b * H : nullptr);
      gates_backward_row(a.gates + r * G, dc_carry + b * H, dh_carry + b * H,
                         a.dy ? a.dy + r * H : nullptr, a.cs + r * H, c_prev, H, a.clip);
    }
    gemm_prepacked<T>(dh_carry, H, B, H, G, a.gates + t * G, Tn * G, 1, wpack, false);
  }
#pragma omp for schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      a.dh0[b * H + j] = dh_carry[b * H + j];
      a.dc0[b * H + j] = dc_carry[b * H + j];
    }

  // Whole-sequence products after the loop.
  // db += Σ_rows dG   (columns split over threads; rows summed in order)
#pragma omp for schedule(static)
  for (int64_t n = 0; n < G; ++n) {
    T s = T(0);
    for (int64_t r = 0; r < rows; ++r) s += a.gates[r * G + n];
    a.db[n] += s;
  }
  // dW_hh += dGᵀ · h_{t-1}   (A(m, k) = dG[k, m])
  gemm<T>(a.dW_hh, H, G, H, rows, a.gates, 1, G, PrevHidden<T>{a.y, a.h0, Tn, H}, true, bpack);
  if (a.ids) {
    // dW_ih[:, id] += dG row: a scatter, rows of dW_ih split over threads.
#pragma omp for schedule(static)
    for (int64_t n = 0; n < G; ++n)
      for (int64_t r = 0; r < rows; ++r) a.dW_ih[n * I + a.ids[r]] += a.gates[r * G + n];
  } else {
    // dW_ih += dGᵀ · X ;  dx = dG · W_ih
    gemm<T>(a.dW_ih, I, G, I, rows, a.gates, 1, G, Strided<T>{a.x, I, 1}, true, bpack);
    gemm<T>(a.dx, I, rows, I, G, a.gates, G, 1, Strided<T>{a.W_ih, I, 1}, false, bpack);
  }
}

template <typename T>
void backward(const BackwardArgs<T>& a, Dims d, int nthreads) {
  const int team = team_size(d, nthreads);
  (void)team;
#pragma omp parallel num_threads(team) if (team > 1)
  backward_team<T>(a, d);
}

template <typename T>
Kernels<T> make_kernels() {
  return Kernels<T>{&forward_workspace_elems<T>, &backward_workspace_elems<T>, &forward<T>,
                    &backward<T>};
}
