// workspace.cpp: small workspaces from malloc, large ones from the block pool.
#include "workspace.h"

#include <cstdlib>
#include <new>

namespace pylstm {

Workspace::Workspace(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < kHugePage) {
    data_ = std::malloc(bytes);
  } else {
    block_ = pool_take(bytes);
    data_ = block_.data;
  }
  if (!data_) throw std::bad_alloc();
}

Workspace::~Workspace() {
  if (block_.p)
    pool_give_back(block_);
  else
    std::free(data_);
}

}  // namespace pylstm
