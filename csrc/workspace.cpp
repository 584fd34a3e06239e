// workspace.cpp: large blocks in huge pages, and one kept per thread.
//
// Huge pages: with 4 KiB pages the packed weights of a large layer cost TLB
// misses on every time step (a training step at T=50, B=32, H=1024: 656 ->
// 506 ms with 2 MiB pages), so large blocks are aligned and advised like
// NumPy's own arrays.
//
// Kept block: a fresh block of tens of MiB is page-faulted and cleared by the
// kernel on every call (clear_page was 5% of that training step). Each thread
// keeps the last large block it released and reuses it when it is big
// enough, so what a thread holds between calls is at most one workspace, the
// size of its last large call; it is freed when the thread ends.
#include "workspace.h"

#include <cstdlib>
#include <new>

#include "large_blocks.h"

namespace pylstm {
namespace {

struct KeptBlock {
  void* p = nullptr;
  size_t bytes = 0;
  ~KeptBlock() { std::free(p); }
};
thread_local KeptBlock kept;

}  // namespace

Workspace::Workspace(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < kHugePage) {
    p_ = std::malloc(bytes);
    bytes_ = bytes;
  } else if (kept.p && kept.bytes >= bytes) {
    p_ = kept.p;
    bytes_ = kept.bytes;
    kept.p = nullptr;
    kept.bytes = 0;
    large_ = true;
  } else {
    std::free(kept.p);  // too small: never hold two
    kept.p = nullptr;
    kept.bytes = 0;
    p_ = allocate_large(bytes);
    bytes_ = bytes;
    large_ = true;
  }
  if (!p_) throw std::bad_alloc();
}

Workspace::~Workspace() {
  if (large_ && !kept.p) {
    kept.p = p_;
    kept.bytes = bytes_;
    return;
  }
  std::free(p_);
}

size_t release_kept_workspace() noexcept {
  const size_t bytes = kept.p ? kept.bytes : 0;
  std::free(kept.p);
  kept.p = nullptr;
  kept.bytes = 0;
  return bytes;
}

}  // namespace pylstm
