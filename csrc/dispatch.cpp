// dispatch.cpp: CPU feature detection (cpuid + the OS check via xgetbv) and
// the per-ISA kernel tables. Compiled without ISA flags.
#include "dispatch.h"

#include <stdexcept>

#if defined(PYLSTM_HAVE_X86_PATHS)
#include <cpuid.h>
#endif

namespace pylstm {
namespace {

#if defined(PYLSTM_HAVE_X86_PATHS)
unsigned long long xgetbv0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

struct CpuFeatures {
  bool avx2 = false, avx512 = false;
  CpuFeatures() {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = c & bit_OSXSAVE, fma = c & bit_FMA, avx = c & bit_AVX;
    if (!osxsave || !avx) return;
    const unsigned long long xcr0 = xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;             // XMM + YMM state saved by the OS
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;           // + opmask, ZMM_Hi256, Hi16_ZMM
    if (__get_cpuid_max(0, nullptr) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    avx2 = os_ymm && fma && (b & bit_AVX2);
    avx512 = avx2 && os_zmm && (b & bit_AVX512F) && (b & bit_AVX512DQ) && (b & bit_AVX512BW) &&
             (b & bit_AVX512VL);
  }
};
const CpuFeatures& cpu() {
  static const CpuFeatures f;  // read once; immutable afterwards
  return f;
}
#endif

}  // namespace

std::vector<std::string> compiled_isas() {
#if defined(PYLSTM_HAVE_X86_PATHS)
  return {"scalar", "avx2", "avx512"};
#else
  return {"scalar"};
#endif
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out{"scalar"};
#if defined(PYLSTM_HAVE_X86_PATHS)
  if (cpu().avx2) out.push_back("avx2");
  if (cpu().avx512) out.push_back("avx512");
#endif
  return out;
}

int team_size_for(Dims d, int nthreads) { return team_size_rule(d, nthreads); }

std::string best_isa() { return supported_isas().back(); }

// Each table is made the first time its path is asked for, and only on a CPU
// that runs it: kernel_table_avx512() is compiled for AVX-512 like the rest
// of its file, and the compiler uses those instructions to build the table
// itself (made together with the AVX2 table, it crashed every AVX2-only CPU
// with an illegal instruction on the first call).
const KernelTable& kernel_table(const std::string& name) {
  if (name == "scalar") {
    static const KernelTable scalar = kernel_table_scalar();
    return scalar;
  }
#if defined(PYLSTM_HAVE_X86_PATHS)
  if (name == "avx2" && cpu().avx2) {
    static const KernelTable avx2 = kernel_table_avx2();
    return avx2;
  }
  if (name == "avx512" && cpu().avx512) {
    static const KernelTable avx512 = kernel_table_avx512();
    return avx512;
  }
#endif
  for (const auto& n : compiled_isas())
    if (n == name) throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU");
  throw std::invalid_argument("unknown ISA '" + name + "' (expected scalar, avx2 or avx512)");
}

}  // namespace pylstm
