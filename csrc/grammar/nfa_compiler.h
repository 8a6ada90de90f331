// A grammar's Thompson NFA (built by llmkit.core.structured.automata) -> the flat tables the matcher runs:
// subset construction, trimming, empty-rule pruning and flattening, natively. The Python path in
// automata.py / compiled.py is the specification: the same languages rule by rule, tested by the
// canonical form of each rule's minimized DFA.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace llmkit::grammar {

// Edges as (source, ..., target) lists; all rules share one state space. Rule 0 is the start rule.
struct RuleNfa {
  int32_t num_states = 0;
  std::vector<int32_t> eps_src, eps_dst;
  std::vector<int32_t> byte_src, byte_mask, byte_dst;  // byte_mask: an index into masks
  std::vector<uint64_t> masks;                         // [M * 4]: 256-bit byte sets, bit b = byte b
  std::vector<int32_t> call_src, call_rule, call_dst;
  std::vector<int32_t> rule_entry, rule_final;  // [R]
};

// What llmkit.core.structured.CompiledGrammar holds; kept_rules = the input rules in output order.
struct CompiledTables {
  std::vector<int32_t> kept_rules;
  std::vector<int32_t> rule_start, state_rule;
  std::vector<uint8_t> accepting;
  std::vector<int32_t> byte_class;  // [256]
  int32_t num_classes = 0;
  std::vector<int32_t> transitions;  // [N * C], -1 = no edge
  std::vector<int32_t> call_offsets, call_rules, call_targets;
};

// A grammar the compiler refuses (too large, or matching nothing); the message is the user-facing one.
struct GrammarBuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Checks every index of `nfa` (std::invalid_argument), then compiles; GrammarBuildError as above.
// Rules other than 0 never match the empty string (a fresh start state when theirs accepts). Rule DFAs
// are trimmed, not minimized (dfa_trim.h): the same languages as the reference's minimal DFAs.
CompiledTables compile_rule_nfas(const RuleNfa& nfa, int32_t max_dfa_states);

}  // namespace llmkit::grammar
