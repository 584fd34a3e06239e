// dispatch.h: which kernel paths were compiled, which this CPU can run, and
// the best one. Chosen per call by name (the Python side keeps the choice),
// so the extension holds no mutable state.
#pragma once
#include <string>
#include <vector>

#include "lstm.h"

namespace pylstm {

KernelTable kernel_table_scalar();
#if defined(PYLSTM_HAVE_X86_PATHS)
KernelTable kernel_table_avx2();
KernelTable kernel_table_avx512();
#endif

std::vector<std::string> compiled_isas();   // in order of preference, worst first
std::vector<std::string> supported_isas();  // compiled and runnable on this CPU + OS
std::string best_isa();
// The table for `name`; throws std::invalid_argument if unknown or unsupported here.
const KernelTable& kernel_table(const std::string& name);

// Threads a call of these sizes uses (the same rule on every ISA).
int team_size_for(Dims d, int nthreads);

}  // namespace pylstm
