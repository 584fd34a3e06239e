// kernels_avx512.cpp: the kernel source compiled for one ISA (avx512), in its own
// namespace so that no inline function is shared with another ISA's code.
#define PYLSTM_ISA_AVX512 1
#include <immintrin.h>
#include <math.h>
#include <cstdint>
#include <limits>
#include <type_traits>
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
