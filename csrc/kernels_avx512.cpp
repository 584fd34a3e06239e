// kernels_avx512.cpp: the kernel source compiled for one ISA (avx512), in its own
// namespace so that no inline function is shared with another ISA's code.
#define PYLSTM_ISA_AVX512 1
// GCC 12's own AVX-512 intrinsics (_mm512_shuffle_f32x4, _mm512_extractf64x4_pd,
// ...) pass a deliberately undefined vector and warn about it wherever they are
// inlined: hundreds of false warnings (GCC bug 105593). Off
// for the header's lines only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <math.h>
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <type_traits>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>  // red zones in the workspace (lstm_kernels.inl)
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "lstm.h"
#include "phase_clock.h"

namespace pylstm {
namespace isa_avx512 {
#include "simd.h"
#include "lstm_kernels.inl"
}  // namespace isa_avx512

KernelTable kernel_table_avx512() {
  return KernelTable{"avx512", isa_avx512::make_kernels<float>(), isa_avx512::make_kernels<double>()};
}
}  // namespace pylstm
