// A compiled grammar as the matcher executes it: one DFA per rule over byte classes, plus call edges.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llmkit::grammar {

constexpr int64_t kUnreachable = int64_t{1} << 40;

struct GrammarTables {
  int num_states = 0;
  int num_classes = 0;
  int num_rules = 0;
  std::vector<int32_t> rule_start;    // [R]
  std::vector<int32_t> state_rule;    // [N]
  std::vector<uint8_t> accepting;     // [N]
  std::vector<int32_t> byte_class;    // [256]
  std::vector<int32_t> transitions;   // [N * C], -1 = no edge
  std::vector<int32_t> call_offsets;  // [N + 1]
  std::vector<int32_t> call_rules;    // [E]
  std::vector<int32_t> call_targets;  // [E]
  std::vector<uint8_t> rule_has_calls;  // [R]

  int next(int state, uint8_t byte) const {
    return transitions[static_cast<size_t>(state) * num_classes + byte_class[byte]];
  }
  bool is_start_rule(int state) const { return state_rule[state] == 0; }
};

// Checks every index (states, rules, classes) so that no table can send the matcher out of bounds;
// throws std::invalid_argument naming the first inconsistency.
std::shared_ptr<const GrammarTables> make_grammar_tables(
    std::vector<int32_t> rule_start, std::vector<int32_t> state_rule, std::vector<uint8_t> accepting,
    std::vector<int32_t> byte_class, std::vector<int32_t> transitions, int num_classes,
    std::vector<int32_t> call_offsets, std::vector<int32_t> call_rules, std::vector<int32_t> call_targets);

// The same tables without the checks: for tables the native compiler (nfa_compiler.h) built, which are
// consistent by construction (checking them again took as long as a small grammar's whole compile).
std::shared_ptr<const GrammarTables> adopt_grammar_tables(
    std::vector<int32_t> rule_start, std::vector<int32_t> state_rule, std::vector<uint8_t> accepting,
    std::vector<int32_t> byte_class, std::vector<int32_t> transitions, int num_classes,
    std::vector<int32_t> call_offsets, std::vector<int32_t> call_rules, std::vector<int32_t> call_targets);

}  // namespace llmkit::grammar
