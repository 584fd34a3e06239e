// bindings.cpp: the only file that knows Python. Each binding checks dtypes
// and shapes (a clear message naming the argument), allocates outputs while
// holding the GIL, releases the GIL for the kernel, returns. No arithmetic.
// The friendly argument handling (casting, None, messages for users) lives
// in pylstm/kernels.py; these checks are the last line that keeps a wrong
// call from ever reaching raw pointers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dispatch.h"
#include "lstm.h"
#include "output_arrays.h"
#include "workspace.h"

namespace py = pybind11;
using pylstm::Dims;
using pylstm_binding::new_array;
using pylstm_binding::output_array;

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

// `obj` as an array, or a TypeError naming it (never an unchecked cast).
py::array as_array(const py::object& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  return py::reinterpret_borrow<py::array>(obj);
}

// Same element type as T in native byte order. Compared by type number, not
// identity: an unpickled array carries its own (equal) dtype object.
// (byteorder(), not the `isnative` attribute: no Python lookup per array.)
template <typename T>
bool has_dtype(const py::array& arr) {
  const py::dtype dt = arr.dtype();
  if (dt.num() != py::detail::npy_format_descriptor<T>::value) return false;
  const char order = dt.byteorder();  // '=' native, '|' not applicable, '<' / '>' explicit
  constexpr char foreign = (PY_BIG_ENDIAN ? '<' : '>');
  return order != foreign;
}

// `obj` must be a C-contiguous array of exactly dtype T and shape `shape`.
// The result refers to the caller's own array (no copy, no conversion): its
// data stays valid for the call, since the caller holds the argument. (The
// shape is compared in place: no allocation on the success path.)
template <typename T>
py::array_t<T> require(const py::object& obj, const char* name, std::initializer_list<int64_t> shape) {
  py::array arr = as_array(obj, name);
  if (!has_dtype<T>(arr))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                         ", got " + std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  bool same = static_cast<size_t>(arr.ndim()) == shape.size();
  for (size_t i = 0; same && i < shape.size(); ++i) same = arr.shape(i) == shape.begin()[i];
  if (!same) {
    const std::vector<int64_t> want(shape), got(arr.shape(), arr.shape() + arr.ndim());
    throw py::value_error(std::string(name) + " must have shape " + shape_str(want) + ", got " + shape_str(got));
  }
  return py::reinterpret_borrow<py::array_t<T>>(arr);
}

template <typename T>
const T* optional_ptr(const py::object& obj, const char* name, std::initializer_list<int64_t> shape) {
  if (obj.is_none()) return nullptr;
  return require<T>(obj, name, shape).data();
}

const int64_t* ids_ptr(const py::object& obj, Dims d) {
  if (obj.is_none()) return nullptr;
  const int64_t* p = require<int64_t>(obj, "ids", {d.B, d.T}).data();
  for (int64_t r = 0; r < d.B * d.T; ++r)
    if (p[r] < 0 || p[r] >= d.I)
      throw py::value_error("ids must lie in [0, " + std::to_string(d.I) + "), found " + std::to_string(p[r]));
  return p;
}

Dims checked_dims(int64_t B, int64_t T, int64_t I, int64_t H) {
  if (B < 1 || T < 1 || I < 1 || H < 1) throw py::value_error("B, T, I and H must all be >= 1");
  return Dims{B, T, I, H};
}

template <typename T>
py::tuple forward_impl(const std::string& isa, const py::object& x, const py::object& ids, const py::object& W_ih,
                       const py::object& W_hh, const py::object& b_ih, const py::object& b_hh, const py::object& h0,
                       const py::object& c0, int64_t B, int64_t Tn, bool need_cache, int nthreads) {
  const auto& k = pylstm::kernel_table(isa);
  const auto& kern = [&]() -> const pylstm::Kernels<T>& {
    if constexpr (std::is_same_v<T, float>) return k.f32; else return k.f64;
  }();
  const py::array wih = as_array(W_ih, "W_ih"), whh = as_array(W_hh, "W_hh");
  if (wih.ndim() != 2 || whh.ndim() != 2) throw py::value_error("W_ih and W_hh must be 2-D");
  const int64_t I = wih.shape(1), H = whh.shape(1);
  const Dims d = checked_dims(B, Tn, I, H);
  pylstm::ForwardArgs<T> a;
  a.W_ih = require<T>(W_ih, "W_ih", {4 * H, I}).data();
  a.W_hh = require<T>(W_hh, "W_hh", {4 * H, H}).data();
  a.b_ih = require<T>(b_ih, "b_ih", {4 * H}).data();
  a.b_hh = require<T>(b_hh, "b_hh", {4 * H}).data();
  a.h0 = optional_ptr<T>(h0, "h0", {B, H});
  a.c0 = optional_ptr<T>(c0, "c0", {B, H});
  a.ids = ids_ptr(ids, d);
  a.x = a.ids ? nullptr : require<T>(x, "x", {B, Tn, I}).data();
  if (!a.ids && x.is_none()) throw py::value_error("one of x and ids is required");

  // The cache's buffers are flat: their layout is the kernel's (lstm.h).
  py::array_t<T> y = output_array<T>({B, Tn, H}), h_T = new_array<T>({B, H}), c_T = new_array<T>({B, H});
  // (no array at all where an inference call needs no gate buffer: the lanes path)
  const int64_t gates_elems = need_cache ? pylstm::cache_gates_elems(d) : pylstm::scratch_gates_elems(d);
  py::object gates = py::none();
  if (gates_elems > 0) {
    py::array_t<T> gates_arr = output_array<T>({gates_elems});
    a.gates = gates_arr.mutable_data();
    gates = gates_arr;
  }
  py::object cs = py::none();
  a.y = y.mutable_data();
  a.h_T = h_T.mutable_data();
  a.c_T = c_T.mutable_data();
  if (need_cache) {
    py::array_t<T> cs_arr = output_array<T>({pylstm::cache_cells_elems(d)});
    a.cs = cs_arr.mutable_data();
    cs = cs_arr;
  }
  pylstm::Workspace work(sizeof(T) * kern.forward_workspace_elems(d, nthreads, need_cache, a.ids != nullptr));
  a.work = static_cast<T*>(work.data());
  {
    py::gil_scoped_release nogil;
    kern.forward(a, d, nthreads);
  }
  if (!need_cache) return py::make_tuple(y, h_T, c_T, py::none(), py::none());
  // y is read-only while a cache shares it (cleared here: half the cost of the Python attribute).
  py::detail::array_proxy(y.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return py::make_tuple(y, h_T, c_T, gates, cs);
}

template <typename T>
py::tuple backward_impl(const std::string& isa, const py::object& gates, const py::object& cs, const py::object& y,
                        const py::object& x, const py::object& ids, const py::object& W_ih, const py::object& W_hh,
                        const py::object& h0, const py::object& c0, const py::object& dy, const py::object& dh_T,
                        const py::object& dc_T, double clip, int nthreads) {
  const auto& k = pylstm::kernel_table(isa);
  const auto& kern = [&]() -> const pylstm::Kernels<T>& {
    if constexpr (std::is_same_v<T, float>) return k.f32; else return k.f64;
  }();
  const py::array yarr = as_array(y, "cache y"), wih = as_array(W_ih, "W_ih");
  if (yarr.ndim() != 3 || wih.ndim() != 2) throw py::value_error("malformed cache");
  const int64_t B = yarr.shape(0), Tn = yarr.shape(1), H = yarr.shape(2), I = wih.shape(1);
  const Dims d = checked_dims(B, Tn, I, H);
  pylstm::BackwardArgs<T> a;
  auto gates_arr = require<T>(gates, "cache gates", {pylstm::cache_gates_elems(d)});
  if (!gates_arr.writeable()) throw py::value_error("cache gates must be writeable");
  a.gates = gates_arr.mutable_data();
  auto cs_arr = require<T>(cs, "cache cell states", {pylstm::cache_cells_elems(d)});
  if (!cs_arr.writeable()) throw py::value_error("cache cell states must be writeable");
  a.cs = cs_arr.mutable_data();
  a.y = require<T>(y, "cache y", {B, Tn, H}).data();
  a.W_ih = require<T>(W_ih, "W_ih", {4 * H, I}).data();
  a.W_hh = require<T>(W_hh, "W_hh", {4 * H, H}).data();
  a.h0 = optional_ptr<T>(h0, "h0", {B, H});
  a.c0 = optional_ptr<T>(c0, "c0", {B, H});
  a.ids = ids_ptr(ids, d);
  a.x = a.ids ? nullptr : require<T>(x, "x", {B, Tn, I}).data();
  a.dy = optional_ptr<T>(dy, "dy", {B, Tn, H});
  a.dh_T = optional_ptr<T>(dh_T, "dh_T", {B, H});
  a.dc_T = optional_ptr<T>(dc_T, "dc_T", {B, H});
  a.clip_on = clip > 0;  // a clip below T's smallest value rounds to 0: everything clips to 0
  a.clip = static_cast<T>(clip > 0 ? clip : 0);

  py::object dx = py::none();
  py::array_t<T> dh0 = new_array<T>({B, H}), dc0 = new_array<T>({B, H});
  py::array_t<T> dW_ih = output_array<T>({4 * H, I}), dW_hh = output_array<T>({4 * H, H}), db = new_array<T>({4 * H});
  if (!a.ids) {
    py::array_t<T> dx_arr = output_array<T>({B, Tn, I});
    a.dx = dx_arr.mutable_data();
    dx = dx_arr;
  }
  a.dh0 = dh0.mutable_data();
  a.dc0 = dc0.mutable_data();
  a.dW_ih = dW_ih.mutable_data();
  a.dW_hh = dW_hh.mutable_data();
  a.db = db.mutable_data();
  pylstm::Workspace work(sizeof(T) * kern.backward_workspace_elems(d, nthreads, a.ids != nullptr));
  a.work = static_cast<T*>(work.data());
  {
    py::gil_scoped_release nogil;
    kern.backward(a, d, nthreads);
  }
  return py::make_tuple(dx, dh0, dc0, dW_ih, dW_hh, db);
}

bool is_f32(const py::object& W) {
  const py::array arr = as_array(W, "W_ih");
  if (has_dtype<float>(arr)) return true;
  if (has_dtype<double>(arr)) return false;
  throw py::type_error("weights must be float32 or float64, got " + std::string(py::str(arr.dtype())));
}

// The workspace a call allocates. need_cache: -1 = the larger of with and
// without a cache (the size check before a call), 0 or 1 = that case.
int64_t workspace_bytes(const std::string& isa, bool f32, bool forward, int64_t B, int64_t T, int64_t I,
                        int64_t H, int nthreads, int need_cache, bool ids) {
  const auto& k = pylstm::kernel_table(isa);
  const Dims d = checked_dims(B, T, I, H);
  auto elems = [&](const auto& kern) {
    if (!forward) return kern.backward_workspace_elems(d, nthreads, ids);
    const int64_t with = kern.forward_workspace_elems(d, nthreads, true, ids);
    const int64_t without = kern.forward_workspace_elems(d, nthreads, false, ids);
    if (need_cache >= 0) return need_cache ? with : without;
    return with > without ? with : without;
  };
  return f32 ? 4 * elems(k.f32) : 8 * elems(k.f64);
}

bool have_openmp() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pylstm's compiled LSTM kernels (private: use the functions in pylstm).";
  m.attr("__version__") = PYLSTM_VERSION;
  m.attr("openmp") = have_openmp();
  m.def("compiled_isas", &pylstm::compiled_isas);
  m.def("supported_isas", &pylstm::supported_isas);
  m.def("best_isa", &pylstm::best_isa);
  m.def(
      "forward",
      [](const std::string& isa, py::object x, py::object ids, py::object W_ih, py::object W_hh, py::object b_ih,
         py::object b_hh, py::object h0, py::object c0, int64_t B, int64_t T, bool need_cache, int nthreads) {
        if (is_f32(W_ih))
          return forward_impl<float>(isa, x, ids, W_ih, W_hh, b_ih, b_hh, h0, c0, B, T, need_cache, nthreads);
        return forward_impl<double>(isa, x, ids, W_ih, W_hh, b_ih, b_hh, h0, c0, B, T, need_cache, nthreads);
      },
      py::arg("isa"), py::arg("x"), py::arg("ids"), py::arg("W_ih"), py::arg("W_hh"), py::arg("b_ih"),
      py::arg("b_hh"), py::arg("h0"), py::arg("c0"), py::arg("B"), py::arg("T"), py::arg("need_cache"),
      py::arg("nthreads"));
  m.def(
      "backward",
      [](const std::string& isa, py::object gates, py::object cs, py::object y, py::object x, py::object ids,
         py::object W_ih, py::object W_hh, py::object h0, py::object c0, py::object dy, py::object dh_T,
         py::object dc_T, double clip, int nthreads) {
        if (is_f32(W_ih))
          return backward_impl<float>(isa, gates, cs, y, x, ids, W_ih, W_hh, h0, c0, dy, dh_T, dc_T, clip, nthreads);
        return backward_impl<double>(isa, gates, cs, y, x, ids, W_ih, W_hh, h0, c0, dy, dh_T, dc_T, clip, nthreads);
      },
      py::arg("isa"), py::arg("gates"), py::arg("cs"), py::arg("y"), py::arg("x"), py::arg("ids"), py::arg("W_ih"),
      py::arg("W_hh"), py::arg("h0"), py::arg("c0"), py::arg("dy"), py::arg("dh_T"), py::arg("dc_T"),
      py::arg("clip"), py::arg("nthreads"));
  m.def(
      "team_size",
      [](int64_t B, int64_t T, int64_t I, int64_t H, int nthreads) {
        return pylstm::team_size_for(checked_dims(B, T, I, H), nthreads);
      },
      py::arg("B"), py::arg("T"), py::arg("I"), py::arg("H"), py::arg("nthreads"),
      "Threads a kernel call of these sizes really uses (for tests and benchmarks).");
  m.def(
      "release_memory", []() { return pylstm::pool_release(); },
      "Frees the recycled large blocks (outputs and workspaces); returns the bytes freed.");
  m.def("pooled_bytes", &pylstm::pool_held_bytes, "Bytes of recycled large blocks held now.");
  m.def("workspace_bytes", &workspace_bytes, py::arg("isa"), py::arg("f32"), py::arg("forward"), py::arg("B"),
        py::arg("T"), py::arg("I"), py::arg("H"), py::arg("nthreads"), py::arg("need_cache") = -1,
        py::arg("ids") = false);
}
