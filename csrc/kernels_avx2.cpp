// kernels_avx2.cpp: the kernel source compiled for one ISA (avx2), in its own
// namespace so that no inline function is shared with another ISA's code.
#define PYLSTM_ISA_AVX2 1
#include <immintrin.h>
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
namespace isa_avx2 {
#include "simd.h"
#include "lstm_kernels.inl"
}  // namespace isa_avx2

KernelTable kernel_table_avx2() {
  return KernelTable{"avx2", isa_avx2::make_kernels<float>(), isa_avx2::make_kernels<double>()};
}
}  // namespace pylstm
