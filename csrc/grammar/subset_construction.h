// Subset construction of one rule's DFA from the grammar's shared Thompson NFA, over the coarsest byte
// classes that every NFA byte mask is a union of.
#pragma once

#include <cstdint>
#include <vector>

#include "grammar/nfa_compiler.h"
#include "grammar/rule_dfa.h"

namespace llmkit::grammar::compiler {

struct Csr {
  std::vector<int32_t> offsets;
  std::vector<int32_t> order;  // edge indices grouped by source, in input order within a source
  void build(const std::vector<int32_t>& src, int32_t n) {
    offsets.assign(static_cast<size_t>(n) + 1, 0);
    for (int32_t s : src) ++offsets[s + 1];
    for (int32_t i = 0; i < n; ++i) offsets[i + 1] += offsets[i];
    order.resize(src.size());
    std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
    for (size_t e = 0; e < src.size(); ++e) order[fill[src[e]]++] = static_cast<int32_t>(e);
  }
};

class SubsetConstruction {
 public:
  SubsetConstruction(const RuleNfa& nfa, int32_t max_dfa_states);

  int32_t num_classes() const { return classes_; }
  const std::vector<int32_t>& byte_class() const { return byte_class_; }  // [256]
  // The DFA of the rule from `entry` to `final_state` (unminimized, state 0 = start, states numbered breadth
  // first), trimmed as it is built: a set of NFA states none of which reaches its rule's final state is
  // no DFA state, its edge is left out (a call edge counts as a path: empty rules are pruned later).
  // One state that matches nothing if the start is dead; GrammarBuildError past max_dfa_states states.
  Dfa determinize(int32_t entry, int32_t final_state);

 private:
  void byte_classes();
  void live_states();
  bool any_live(const std::vector<int32_t>& set) const;
  void closure(std::vector<int32_t>& set);

  const RuleNfa& nfa_;
  int32_t max_states_;
  Csr eps_, bytes_, calls_;
  std::vector<uint32_t> stamp_;
  std::vector<uint8_t> live_;  // [NFA states]: reaches its rule's final state
  uint32_t epoch_ = 0;
  std::vector<int32_t> byte_class_;                  // [256]
  int32_t classes_ = 0;
  std::vector<int32_t> representative_;              // per class: its first byte
  std::vector<std::vector<int32_t>> mask_classes_;  // per mask: the classes it is the union of
};

}  // namespace llmkit::grammar::compiler
