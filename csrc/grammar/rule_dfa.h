// A rule's DFA over byte classes as the native grammar compiler builds it (subset_construction.h) and
// minimizes it (dfa_minimization.h); nfa_compiler.cpp prunes and flattens the rules' DFAs into tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace llmkit::grammar::compiler {

struct VectorHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull ^ v.size();
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct Dfa {
  int32_t n = 0;
  std::vector<uint8_t> accepting;
  std::vector<int32_t> next;                                 // [n * C], -1 = no edge
  std::vector<std::vector<std::pair<int32_t, int32_t>>> calls;  // per state: (rule, target), by rule

  void resize(int32_t states, int32_t classes) {
    n = states;
    accepting.assign(states, 0);
    next.assign(static_cast<size_t>(states) * classes, -1);
    calls.assign(states, {});
  }
  void add_state(int32_t classes) {
    ++n;
    accepting.push_back(0);
    next.resize(static_cast<size_t>(n) * classes, -1);
    calls.emplace_back();
  }
};

inline Dfa empty_dfa(int32_t classes) {
  Dfa d;
  d.add_state(classes);
  return d;
}

}  // namespace llmkit::grammar::compiler
