// output_arrays.h: the NumPy arrays the binding returns, made fresh (small)
// or on recycled memory (large: large_blocks.h). Included by bindings.cpp
// only; knows NumPy's C API, nothing of the kernels.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <new>

#include "large_blocks.h"

namespace pylstm_binding {

namespace py = pybind11;

// A C-contiguous array of T made with NumPy's own constructor (the
// py::array_t constructor builds two std::vectors per array, shape and
// strides, and a small training step makes a dozen arrays): fresh memory
// (data null), or `data` with `flags`, whose owner the caller then sets as
// the array's base.
template <typename T>
py::array_t<T> new_array(std::initializer_list<int64_t> shape, void* data = nullptr, int flags = 0) {
  const auto& api = py::detail::npy_api::get();
  Py_intptr_t dims[4];
  int nd = 0;
  for (int64_t n : shape) dims[nd++] = static_cast<Py_intptr_t>(n);
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  if (!descr) throw py::error_already_set();
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, nd, dims, nullptr, data, flags, nullptr);
  if (!arr) throw py::error_already_set();  // (NumPy took the descriptor's reference either way)
  return py::reinterpret_steal<py::array_t<T>>(arr);
}

// NumPy's tracemalloc domain: pooled arrays are traced as NumPy's own are.
constexpr unsigned int kNumpyTraceDomain = 389047;
// (Python 3.11's tracemalloc.h declares these without extern "C", so a C++
// call links against a mangled name that does not exist: they are declared
// again here under their C symbol names, with the platform's prefix (an
// underscore on macOS). Other compilers skip the tracing.)
#if defined(__GNUC__)
#define PYLSTM_C_NAME2(prefix, name) #prefix name
#define PYLSTM_C_NAME(prefix, name) PYLSTM_C_NAME2(prefix, name)
extern "C" int pylstm_trace_track(unsigned int, uintptr_t, size_t)
    __asm__(PYLSTM_C_NAME(__USER_LABEL_PREFIX__, "PyTraceMalloc_Track"));
extern "C" int pylstm_trace_untrack(unsigned int, uintptr_t)
    __asm__(PYLSTM_C_NAME(__USER_LABEL_PREFIX__, "PyTraceMalloc_Untrack"));
#else
inline int pylstm_trace_track(unsigned int, uintptr_t, size_t) { return 0; }
inline int pylstm_trace_untrack(unsigned int, uintptr_t) { return 0; }
#endif

inline void give_back_block(PyObject* capsule) {
  auto* block = static_cast<pylstm::PooledBlock*>(PyCapsule_GetPointer(capsule, "pylstm.block"));
  if (!block) {  // (cannot happen: the name is ours) never raise from a destructor
    PyErr_Clear();
    return;
  }
  pylstm_trace_untrack(kNumpyTraceDomain, reinterpret_cast<uintptr_t>(block->data));
  pylstm::pool_give_back(*block);
  delete block;
}

// A large output array: its memory comes from the pool of recycled blocks
// (a fresh one costs a page fault and a clear per 4 KiB), and goes back there
// when the array and every view of it are gone (the array's base is a
// capsule that owns the block). Small ones: new_array.
template <typename T>
py::array_t<T> output_array(std::initializer_list<int64_t> shape) {
  size_t bytes = sizeof(T);
  for (int64_t n : shape) bytes *= static_cast<size_t>(n);
  if (bytes < pylstm::kPooledMinBytes) return new_array<T>(shape);
  auto* block = new pylstm::PooledBlock(pylstm::pool_take(bytes));
  if (!block->p) {
    delete block;
    throw std::bad_alloc();
  }
  PyObject* capsule = PyCapsule_New(block, "pylstm.block", give_back_block);
  if (!capsule) {
    pylstm::pool_give_back(*block);
    delete block;
    throw py::error_already_set();
  }
  pylstm_trace_track(kNumpyTraceDomain, reinterpret_cast<uintptr_t>(block->data), bytes);
  py::object base = py::reinterpret_steal<py::object>(capsule);  // from here the capsule owns the block
  using api = py::detail::npy_api;
  auto result = new_array<T>(shape, block->data,
                             api::NPY_ARRAY_C_CONTIGUOUS_ | api::NPY_ARRAY_ALIGNED_ | api::NPY_ARRAY_WRITEABLE_);
  if (api::get().PyArray_SetBaseObject_(result.ptr(), base.release().ptr()) != 0)  // (steals the capsule)
    throw py::error_already_set();
  return result;
}

}  // namespace pylstm_binding
