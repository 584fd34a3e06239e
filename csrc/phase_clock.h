// phase_clock.h: where a kernel call's time goes, for development builds only.
//
// Built with -Ccmake.define.PYLSTM_PHASE_TIMES=ON, the kernels' main thread
// adds the wall time of each phase (between two team barriers, so the time
// of the slowest thread) to a per-process table, printed to stderr at exit.
// Without it every macro is empty. Used to see where a 16-thread training
// step loses its time on a machine that has no perf. One table per process,
// not synchronized: time one Python thread's calls at a time.
#pragma once

#if defined(PYLSTM_PHASE_TIMES)
#include <chrono>
#include <cstdio>

namespace pylstm {
struct PhaseTable {
  static constexpr int kMax = 32;
  const char* names[kMax] = {};
  double seconds[kMax] = {};
  long calls[kMax] = {};
  ~PhaseTable() {
    for (int i = 0; i < kMax; ++i)
      if (names[i]) std::fprintf(stderr, "phase %-28s %10.3f ms total %8ld times\n", names[i], 1e3 * seconds[i], calls[i]);
  }
  void add(int id, const char* name, double s) {
    names[id] = name;
    seconds[id] += s;
    calls[id] += 1;
  }
};
inline PhaseTable& phase_table() {
  static PhaseTable t;
  return t;
}
struct PhaseClock {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  // Charges the time since the last mark to phase `id` (main thread only).
  void mark(int id, const char* name) {
    const auto now = std::chrono::steady_clock::now();
    if (thread_index_for_clock() == 0) phase_table().add(id, name, std::chrono::duration<double>(now - last).count());
    last = now;
  }
  static int thread_index_for_clock() {
#if defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
  }
};
}  // namespace pylstm
#define PYLSTM_PHASE_START() ::pylstm::PhaseClock phase_clock_
#define PYLSTM_PHASE(id, name) phase_clock_.mark(id, name)
#else
#define PYLSTM_PHASE_START() (void)0
#define PYLSTM_PHASE(id, name) (void)0
#endif
