// large_blocks.h: memory for big buffers (a call's workspace, its large
// output arrays), in 2 MiB-aligned blocks advised into transparent huge
// pages, and a bounded pool that recycles them. Knows nothing of Python.
#pragma once
#include <cstddef>

namespace pylstm {

// Blocks of at least this many bytes are "large": huge-page aligned and
// advised. Below it, plain malloc.
constexpr size_t kHugePage = size_t(1) << 21;

// A 2 MiB-aligned block advised into huge pages (nullptr when out of
// memory); free with std::free.
void* allocate_large(size_t bytes);

// Output arrays of at least this many bytes come from the pool.
constexpr size_t kPooledMinBytes = size_t(1) << 20;

// The pool of large blocks: the outputs' and the workspaces'.
//
// Why: a large output (the cache's gate array: 52 MB at T=100, B=64, H=512)
// or workspace freshly allocated is mapped anew on every call, and the operating system
// faults in and clears every page of it before the kernel may write there
// (clear_page: up to a tenth of a profile of that training step; with the
// pool the step measured 4-7% faster). Training frees the same sizes
// that the next step asks for, so a block whose array died (or whose call
// ended) goes back to the pool and the next call of that size takes it,
// already mapped.
//
// Bounds: at most kPoolMaxBlocks blocks and kPoolMaxBytes held; beyond that
// the oldest are freed. pool_release() frees them all (pylstm.release_memory).
// A block serves a request of at least half its size, so a small call never
// pins a huge block. Thread-safe.
constexpr size_t kPoolMaxBlocks = 16;
constexpr size_t kPoolMaxBytes = size_t(1) << 30;

struct PooledBlock {
  void* p = nullptr;     // the allocation (what is freed)
  size_t bytes = 0;      // its capacity
  void* data = nullptr;  // where the array starts: p + a stagger (see pool_take)
};
// A block with room for `bytes` at `data` (reused or new); p == nullptr when
// out of memory.
PooledBlock pool_take(size_t bytes);
// The block of an array that died: kept for reuse, or freed.
void pool_give_back(PooledBlock block) noexcept;
// Frees every kept block; returns the bytes freed.
size_t pool_release() noexcept;
// Bytes the pool holds now (for tests and benchmarks).
size_t pool_held_bytes() noexcept;

}  // namespace pylstm
