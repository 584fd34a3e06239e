// lstm.h: the kernel interface. Knows nothing of Python.
//
// Layout, written down once (PyTorch's, gate order i, f, g, o):
//   x      (B, T, I)  batch-first input           ids (B, T) token ids in [0, V), V = I
//   W_ih   (4H, I)    W_hh (4H, H)    b_ih, b_hh (4H,)
//   y      (B, T, H)  h at every step             h0, c0, h_T, c_T (B, H)
//   gates  (B, T, 4H) gate activations [i f g o] per row (the cache); backward
//                     overwrites it with the pre-activation gradients dG
//   cs     (B, T, H)  cell state at every step (the cache)
//   (small H: the lanes layout below instead; the cache's buffers are flat)
// One step:  a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh
//            i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//            c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
//
// Each kernel is a free function over raw pointers: outputs first, then
// inputs, then dims. The caller owns every buffer, including the workspace
// (size from *_workspace_elems), so nothing is allocated inside a kernel.
// Every output is written (the weight gradients too: the caller need not
// zero them; the backward uses dW_hh's room as scratch before it writes it).
#pragma once
#include <cstdint>

namespace pylstm {

struct Dims {
  int64_t B = 0, T = 0, I = 0, H = 0;  // I is the vocabulary size V on the ids path
};

template <typename T>
struct ForwardArgs {
  // outputs
  T* y = nullptr;       // (B, T, H)
  T* h_T = nullptr;     // (B, H)
  T* c_T = nullptr;     // (B, H)
  T* gates = nullptr;   // (B, T, 4H): activations, the cache when need_cache (cs given);
                        // else scratch room, contents unspecified
  T* cs = nullptr;      // (B, T, H) or null (inference: no cell history kept)
  T* work = nullptr;    // forward_workspace_elems(dims)
  // inputs
  const T* x = nullptr;          // (B, T, I), or null on the ids path
  const int64_t* ids = nullptr;  // (B, T), or null; checked in [0, V) by the caller
  const T* W_ih = nullptr;
  const T* W_hh = nullptr;
  const T* b_ih = nullptr;
  const T* b_hh = nullptr;
  const T* h0 = nullptr;  // (B, H) or null = zeros
  const T* c0 = nullptr;  // (B, H) or null = zeros
};

template <typename T>
struct BackwardArgs {
  // outputs, all written (dW_hh's and the cache's rooms serve as scratch first)
  T* dx = nullptr;     // (B, T, I), or null (ids path)
  T* dh0 = nullptr;    // (B, H)
  T* dc0 = nullptr;    // (B, H)
  T* dW_ih = nullptr;  // (4H, I)
  T* dW_hh = nullptr;  // (4H, H)
  T* db = nullptr;     // (4H,): the gradient of b_ih and of b_hh alike
  T* gates = nullptr;  // (B, T, 4H): the cache's activations in, dG out
  T* work = nullptr;   // backward_workspace_elems(dims)
  // inputs
  const T* dy = nullptr;    // (B, T, H) or null
  const T* dh_T = nullptr;  // (B, H) or null
  const T* dc_T = nullptr;  // (B, H) or null
  const T* x = nullptr;
  const int64_t* ids = nullptr;
  const T* y = nullptr;     // (B, T, H) from forward
  T* cs = nullptr;          // (B, T, H) from forward; the cache is used up (the lanes path keeps dc in it)
  const T* W_ih = nullptr;
  const T* W_hh = nullptr;
  const T* h0 = nullptr;
  const T* c0 = nullptr;
  bool clip_on = false;  // clip dG elementwise to [-clip, clip]
  T clip = 0;
};

// One ISA's kernels for one dtype.
template <typename T>
struct Kernels {
  // cache: the forward keeps a cache; ids: the input is token ids
  int64_t (*forward_workspace_elems)(Dims d, int nthreads, bool cache, bool ids);
  int64_t (*backward_workspace_elems)(Dims d, int nthreads, bool ids);
  void (*forward)(const ForwardArgs<T>& a, Dims d, int nthreads);
  void (*backward)(const BackwardArgs<T>& a, Dims d, int nthreads);
};

// Threads pay for themselves only when each time step has enough work:
// below this many multiply-adds per step and thread (about 5 us of work), the
// barriers cost more than they save, and far more when another process
// competes for the cores (a descheduled thread stalls every step).
constexpr int64_t kMinStepWorkPerThread = int64_t(1) << 19;

inline int team_size_rule(Dims d, int nthreads) {
  const int64_t step_work = d.B * 4 * d.H * (d.H + 1);
  if (nthreads <= 1 || step_work < 2 * kMinStepWorkPerThread) return 1;
  const int64_t useful = step_work / kMinStepWorkPerThread;
  return static_cast<int>(useful < nthreads ? useful : nthreads);
}

// The batch-in-lanes layout (csrc/lstm_lanes.inl). Small hidden sizes leave
// most of a vector empty when it runs along the hidden units, so there the
// batch runs along the vector lanes instead: the cache holds gate-major rows
// over (t, b), the batch padded to kLanePad (zeros past B):
//   gates  (4H, T, Bp)                 cs  (2, H, T, Bp): c_t, then h_{t-1}, at step t
// Chosen from the sizes alone (never the ISA, dtype or thread count), so a
// cache made by any path is read correctly by any other's backward. Only
// sizes that always run on one thread use it (no reduction to split).
constexpr int64_t kLanePad = 16;
constexpr int64_t kLanesMaxH = 64;
constexpr int64_t kLanesMinB = 8;
inline int64_t padded_batch(int64_t B) { return (B + kLanePad - 1) / kLanePad * kLanePad; }
inline bool lanes_layout(Dims d) {
  return d.H <= kLanesMaxH && d.B >= kLanesMinB && d.B * 4 * d.H * (d.H + 1) < 2 * kMinStepWorkPerThread;
}
// Elements of the cache's two buffers, in whichever layout the sizes pick.
inline int64_t cache_gates_elems(Dims d) {
  return lanes_layout(d) ? 4 * d.H * d.T * padded_batch(d.B) : d.B * d.T * 4 * d.H;
}
inline int64_t cache_cells_elems(Dims d) {
  return lanes_layout(d) ? 2 * d.H * d.T * padded_batch(d.B) : d.B * d.T * d.H;
}
// The gate buffer an inference call needs (the lanes path keeps none).
inline int64_t scratch_gates_elems(Dims d) { return lanes_layout(d) ? 0 : d.B * d.T * 4 * d.H; }

struct KernelTable {
  const char* name;
  Kernels<float> f32;
  Kernels<double> f64;
};

}  // namespace pylstm
