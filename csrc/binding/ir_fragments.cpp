// See ir_fragments.h.
#include "binding/ir_fragments.h"

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

namespace py = pybind11;

namespace llmkit::ir {

constexpr size_t kMaxFragments = 4096;  // automata.MAX_FRAGMENTS: least recently used dropped beyond

KnownPieces& known_pieces() {
  static auto* pieces = new KnownPieces();  // never destroyed: no reference dropped after finalization
  return *pieces;
}

namespace {

void forget_oldest(KnownPieces& pieces) {
  std::vector<std::pair<uint64_t, PyObject*>> by_age;
  by_age.reserve(pieces.entries.size());
  for (const auto& [key, known] : pieces.entries) by_age.emplace_back(known.last_use, key);
  const size_t drop = by_age.size() - kMaxFragments * 3 / 4;  // a quarter at once: amortized
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
  for (size_t k = 0; k < drop; ++k) {
    PyObject* expr = by_age[k].second;
    pieces.entries.erase(expr);
    Py_DECREF(expr);
  }
}

int32_t int32_of(PyObject* value, const char* what) {
  const long v = PyLong_AsLong(value);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (v < INT32_MIN || v > INT32_MAX) throw py::value_error(std::string(what) + " does not fit in int32");
  return static_cast<int32_t>(v);
}

std::vector<int32_t> int32_list(const py::handle& values, const char* what) {
  if (!PyList_Check(values.ptr())) throw py::type_error(std::string(what) + " must be a list of ints");
  py::list list = py::reinterpret_borrow<py::list>(values);
  std::vector<int32_t> out(list.size());
  for (size_t k = 0; k < out.size(); ++k) out[k] = int32_of(PyList_GET_ITEM(list.ptr(), k), what);
  return out;
}

}  // namespace

void remember(PyObject* expr, const Known& known) {
  KnownPieces& pieces = known_pieces();
  Py_INCREF(expr);
  pieces.entries.emplace(expr, known);
  if (pieces.entries.size() > kMaxFragments) forget_oldest(pieces);
}

Mask256 mask_of(const py::handle& value) {
  py::bytes raw = value.attr("to_bytes")(32, "little");  // OverflowError for a set beyond 256 bits
  const std::string data = raw;
  Mask256 m{};
  std::memcpy(m.w, data.data(), sizeof m.w);  // little-endian words, as the compiler reads them
  return m;
}

// automata.Fragment (size, exit_state, eps=(src, dst), byte=(src, mask index, dst), masks) -> ours.
std::shared_ptr<const Fragment> fragment_from_python(const py::handle& f) {
  if (f.is_none()) return nullptr;
  auto out = std::make_shared<Fragment>();
  out->size = f.attr("size").cast<int32_t>();
  out->exit_state = f.attr("exit_state").cast<int32_t>();
  py::tuple eps = f.attr("eps"), byte = f.attr("byte");
  out->eps_src = int32_list(eps[0], "fragment eps"), out->eps_dst = int32_list(eps[1], "fragment eps");
  out->byte_src = int32_list(byte[0], "fragment byte"), out->byte_mask = int32_list(byte[1], "fragment byte");
  out->byte_dst = int32_list(byte[2], "fragment byte");
  for (const py::handle mask : py::tuple(f.attr("masks"))) out->masks.push_back(mask_of(mask));
  const auto state_ok = [&](int32_t s) { return s >= -1 && s < out->size; };
  const bool ok = std::all_of(out->eps_src.begin(), out->eps_src.end(), state_ok) &&
                  std::all_of(out->eps_dst.begin(), out->eps_dst.end(), state_ok) &&
                  std::all_of(out->byte_src.begin(), out->byte_src.end(), state_ok) &&
                  std::all_of(out->byte_dst.begin(), out->byte_dst.end(), state_ok) && state_ok(out->exit_state) &&
                  out->eps_src.size() == out->eps_dst.size() && out->byte_src.size() == out->byte_mask.size() &&
                  out->byte_src.size() == out->byte_dst.size() &&
                  std::all_of(out->byte_mask.begin(), out->byte_mask.end(), [&](int32_t m) {
                    return m >= 0 && static_cast<size_t>(m) < out->masks.size();
                  });
  if (!ok) throw py::value_error("a grammar fragment from Python names a state or byte set it does not have");
  return out;
}

}  // namespace llmkit::ir
