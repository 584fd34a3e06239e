// large_blocks.cpp: huge-page blocks and the output pool (see large_blocks.h).
#include "large_blocks.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sys/mman.h>
#define PYLSTM_POSIX_MEMORY 1
#endif

// Under AddressSanitizer a kept block is poisoned (a read through a stale
// pointer to a dead array is reported) and a reused one is filled with 0xFF
// bytes, NaN in float32 and float64, as ASan's malloc_fill_byte does for fresh
// heap blocks in the sanitizer CI: an output element the kernel forgot to
// write shows up in the comparisons with the reference.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PYLSTM_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PYLSTM_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define PYLSTM_POOL_FILL(p, n) std::memset(p, 0xFF, n)
#else
#define PYLSTM_POOL_POISON(p, n) ((void)(p), (void)(n))
#define PYLSTM_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#define PYLSTM_POOL_FILL(p, n) ((void)(p), (void)(n))
#endif

namespace pylstm {

void* allocate_large(size_t bytes) {
  void* p = nullptr;
#if defined(PYLSTM_POSIX_MEMORY)
  // (not rounded up to whole huge pages: a partial last 2 MiB stays in small pages)
  if (posix_memalign(&p, kHugePage, bytes) != 0) return nullptr;
#if defined(MADV_HUGEPAGE)
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only: ignored where THP is off
#endif
#else
  p = std::malloc(bytes);
#endif
  return p;
}

namespace {

struct Pool {
  std::mutex mutex;
  std::deque<PooledBlock> kept;  // oldest first
  size_t held = 0;
};
// Never destroyed: arrays may die during interpreter shutdown, after static
// destructors would have run. Held across fork() so that a child never
// inherits it locked by a thread the child does not have.
Pool& pool() {
  static Pool* p = [] {
    Pool* made = new Pool;
#if defined(PYLSTM_POSIX_MEMORY)
    pthread_atfork([] { pool().mutex.lock(); }, [] { pool().mutex.unlock(); }, [] { pool().mutex.unlock(); });
#endif
    return made;
  }();
  return *p;
}

// Arrays start at a different offset of their huge-page-aligned blocks, one
// of kStaggers steps of 4 KiB + 64 bytes: rows at the same index of two
// arrays read together (c_t and h_t, gates and c_t) would otherwise map to the
// same cache sets, L1's and L2's. (With every array at offset 0, the training
// step at T=64, B=32, I=65, H=128 measured 3-4% slower than with NumPy's own
// arrays in four interleaved pairs; staggered, on par.)
constexpr size_t kStaggerStep = 4096 + 64;
constexpr size_t kStaggers = 16;
constexpr size_t kStaggerRoom = kStaggerStep * (kStaggers - 1);

size_t next_stagger() {
  static std::atomic<size_t> counter{0};
  return (counter.fetch_add(1, std::memory_order_relaxed) % kStaggers) * kStaggerStep;
}

}  // namespace

PooledBlock pool_take(size_t bytes) {
  Pool& pl = pool();
  const size_t stagger = next_stagger();
  bytes += kStaggerRoom;
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    auto best = pl.kept.end();
    for (auto it = pl.kept.begin(); it != pl.kept.end(); ++it)
      if (it->bytes >= bytes && it->bytes / 2 <= bytes && (best == pl.kept.end() || it->bytes < best->bytes))
        best = it;
    if (best != pl.kept.end()) {
      PooledBlock b = *best;
      pl.kept.erase(best);
      pl.held -= b.bytes;
      PYLSTM_POOL_UNPOISON(b.p, b.bytes);
      PYLSTM_POOL_FILL(b.p, b.bytes);
      b.data = static_cast<char*>(b.p) + stagger;
      return b;
    }
  }
  void* p = allocate_large(bytes);
  return PooledBlock{p, bytes, p ? static_cast<char*>(p) + stagger : nullptr};
}

void pool_give_back(PooledBlock block) noexcept {
  if (!block.p) return;
  if (block.bytes > kPoolMaxBytes) {
    std::free(block.p);
    return;
  }
  Pool& pl = pool();
  std::deque<PooledBlock> evicted;
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    PYLSTM_POOL_POISON(block.p, block.bytes);
    pl.kept.push_back(block);
    pl.held += block.bytes;
    while (pl.kept.size() > kPoolMaxBlocks || pl.held > kPoolMaxBytes) {
      evicted.push_back(pl.kept.front());
      pl.held -= pl.kept.front().bytes;
      pl.kept.pop_front();
    }
  }
  for (const PooledBlock& b : evicted) {  // outside the lock: munmap takes time
    PYLSTM_POOL_UNPOISON(b.p, b.bytes);
    std::free(b.p);
  }
}

size_t pool_release() noexcept {
  Pool& pl = pool();
  std::deque<PooledBlock> all;
  {
    std::lock_guard<std::mutex> lock(pl.mutex);
    all.swap(pl.kept);
    pl.held = 0;
  }
  size_t freed = 0;
  for (const PooledBlock& b : all) {
    freed += b.bytes;
    PYLSTM_POOL_UNPOISON(b.p, b.bytes);
    std::free(b.p);
  }
  return freed;
}

size_t pool_held_bytes() noexcept {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mutex);
  return pl.held;
}

}  // namespace pylstm
