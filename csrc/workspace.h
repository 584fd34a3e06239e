// workspace.h: the scratch memory of one kernel call (the binding's only
// allocation besides its NumPy outputs). Knows nothing of Python.
#pragma once
#include <cstddef>

namespace pylstm {

// `bytes` of scratch for one call; throws std::bad_alloc. Blocks of 2 MiB and
// more are 2 MiB aligned and advised into transparent huge pages, and the
// last one a thread released is kept for that thread's next call: see
// workspace.cpp for why and for the bound on what is kept.
class Workspace {
 public:
  explicit Workspace(size_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;  // capacity of p_
  bool large_ = false;
};

// Frees the block the calling thread keeps between calls; returns its bytes.
size_t release_kept_workspace() noexcept;

}  // namespace pylstm
