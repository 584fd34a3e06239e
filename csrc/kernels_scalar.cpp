// kernels_scalar.cpp: the kernel source compiled for one ISA (scalar), in its own
// namespace so that no inline function is shared with another ISA's code.
#define PYLSTM_ISA_SCALAR 1

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
namespace isa_scalar {
#include "simd.h"
#include "lstm_kernels.inl"
}  // namespace isa_scalar

KernelTable kernel_table_scalar() {
  return KernelTable{"scalar", isa_scalar::make_kernels<float>(), isa_scalar::make_kernels<double>()};
}
}  // namespace pylstm
