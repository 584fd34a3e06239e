// workspace.h: the scratch memory of one kernel call (the binding's only
// allocation besides its NumPy outputs). Knows nothing of Python.
#pragma once
#include <cstddef>

#include "large_blocks.h"

namespace pylstm {

// `bytes` of scratch for one call; throws std::bad_alloc. Blocks of 2 MiB and
// more come from the pool of large blocks (large_blocks.h): 2 MiB aligned,
// advised into transparent huge pages (with 4 KiB pages the packed weights of
// a large layer cost TLB misses on every time step: a training step at T=50,
// B=32, H=1024 took 656 instead of 506 ms), and already mapped when a
// previous call's block is reused (a fresh one is faulted in and cleared page
// by page: clear_page was 5% of that step).
class Workspace {
 public:
  explicit Workspace(size_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  PooledBlock block_;  // p null: data_ is a plain malloc
};

}  // namespace pylstm
