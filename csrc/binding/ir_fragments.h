// The pieces of grammar automata the IR builder (grammar_ir.cpp) replays: fragments of edges, the
// process-wide record of pieces already emitted (automata._Known, natively), and fragments read from
// Python (automata.Fragment).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

namespace llmkit::ir {

constexpr int32_t kMinFragmentStates = 8;  // automata.MIN_FRAGMENT_STATES: smaller pieces are emitted

struct Mask256 {
  uint64_t w[4];
  bool operator==(const Mask256& o) const { return std::memcmp(w, o.w, sizeof w) == 0; }
};

struct Mask256Hash {
  size_t operator()(const Mask256& m) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t x : m.w) h = (h ^ x) * 0xff51afd7ed558ccdull;
    return static_cast<size_t>(h ^ (h >> 32));
  }
};

// The edges one emission of a rule-free expression appended: states numbered from 0, the entry as -1,
// byte edges naming their byte sets by index into `masks` (automata's Fragment, natively).
struct Fragment {
  int32_t size = 0, exit_state = -1;
  std::vector<int32_t> eps_src, eps_dst, byte_src, byte_mask, byte_dst;
  std::vector<Mask256> masks;
};

// What the process knows of one rule-free expression (automata._Known): keyed by the object's address,
// which cannot be reused while the entry holds its reference. Only touched with the GIL held.
struct Known {
  PyObject* expr = nullptr;
  uint64_t compilation = 0;
  int32_t states = 0;
  std::shared_ptr<const Fragment> fragment;
  bool minimal = false;
  uint64_t last_use = 0;
};

struct KnownPieces {
  std::unordered_map<PyObject*, Known> entries;
  uint64_t clock = 0, compilations = 0;
};

KnownPieces& known_pieces();

// Records `known` for `expr` (taking a reference to it); beyond automata.MAX_FRAGMENTS pieces, the least
// recently used quarter is dropped.
void remember(PyObject* expr, const Known& known);

// A Python int of at most 256 bits as a byte set (OverflowError beyond).
Mask256 mask_of(const pybind11::handle& value);

// automata.Fragment -> ours, checked (TypeError, ValueError); null for None.
std::shared_ptr<const Fragment> fragment_from_python(const pybind11::handle& f);

}  // namespace llmkit::ir
