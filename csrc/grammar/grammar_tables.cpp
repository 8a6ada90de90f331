#include "grammar/grammar_tables.h"

#include <stdexcept>

namespace llmkit::grammar {

namespace {

// The message is built only on failure: a std::string argument cost an allocation per call, and this is
// called once per table entry (0.28 ms of checks for a 419 x 39 table).
void check(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(std::string("grammar tables: ") + message);
}

void check_ids(const std::vector<int32_t>& values, int32_t low, int32_t high, const char* name) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < low || values[i] >= high) {
      throw std::invalid_argument(std::string("grammar tables: ") + name + "[" + std::to_string(i) + "] = " +
                                  std::to_string(values[i]) + " is outside [" + std::to_string(low) + ", " +
                                  std::to_string(high) + ")");
    }
  }
}

}  // namespace

std::shared_ptr<const GrammarTables> make_grammar_tables(
    std::vector<int32_t> rule_start, std::vector<int32_t> state_rule, std::vector<uint8_t> accepting,
    std::vector<int32_t> byte_class, std::vector<int32_t> transitions, int num_classes,
    std::vector<int32_t> call_offsets, std::vector<int32_t> call_rules, std::vector<int32_t> call_targets) {
  const int n = static_cast<int>(state_rule.size());
  const int r = static_cast<int>(rule_start.size());
  check(n > 0 && r > 0, "a grammar needs at least one rule and one state");
  check(num_classes > 0 && num_classes <= 256, "num_classes must be in [1, 256]");
  check(accepting.size() == static_cast<size_t>(n), "accepting must have one entry per state");
  check(byte_class.size() == 256, "byte_class must have 256 entries");
  check(transitions.size() == static_cast<size_t>(n) * num_classes, "transitions must be states x classes");
  check(call_offsets.size() == static_cast<size_t>(n) + 1, "call_offsets must have states + 1 entries");
  check(call_rules.size() == call_targets.size(), "call_rules and call_targets differ in length");
  check_ids(rule_start, 0, n, "rule_start");
  check_ids(state_rule, 0, r, "state_rule");
  check_ids(byte_class, 0, num_classes, "byte_class");
  check_ids(transitions, -1, n, "transitions");
  check_ids(call_rules, 1, r, "call_rules");  // the start rule (0) is never called
  check_ids(call_targets, 0, n, "call_targets");
  check(call_offsets[0] == 0 && call_offsets[n] == static_cast<int32_t>(call_rules.size()),
        "call_offsets must start at 0 and end at the number of call edges");
  for (int s = 0; s < n; ++s) check(call_offsets[s] <= call_offsets[s + 1], "call_offsets must not decrease");
  for (int s = 0; s < n; ++s) {
    for (int c = 0; c < num_classes; ++c) {
      const int32_t t = transitions[static_cast<size_t>(s) * num_classes + c];
      check(t < 0 || state_rule[t] == state_rule[s], "a byte edge leaves its rule");
    }
    for (int e = call_offsets[s]; e < call_offsets[s + 1]; ++e) {
      check(state_rule[call_targets[e]] == state_rule[s], "a call edge returns into another rule");
    }
  }
  for (int k = 0; k < r; ++k) check(state_rule[rule_start[k]] == k, "a rule starts in another rule's state");
  return adopt_grammar_tables(std::move(rule_start), std::move(state_rule), std::move(accepting),
                              std::move(byte_class), std::move(transitions), num_classes, std::move(call_offsets),
                              std::move(call_rules), std::move(call_targets));
}

std::shared_ptr<const GrammarTables> adopt_grammar_tables(
    std::vector<int32_t> rule_start, std::vector<int32_t> state_rule, std::vector<uint8_t> accepting,
    std::vector<int32_t> byte_class, std::vector<int32_t> transitions, int num_classes,
    std::vector<int32_t> call_offsets, std::vector<int32_t> call_rules, std::vector<int32_t> call_targets) {
  auto g = std::make_shared<GrammarTables>();
  const int n = static_cast<int>(state_rule.size());
  const int r = static_cast<int>(rule_start.size());
  g->num_states = n;
  g->num_classes = num_classes;
  g->num_rules = r;
  g->rule_has_calls.assign(r, 0);
  for (int s = 0; s < n; ++s) {
    if (call_offsets[s + 1] > call_offsets[s]) g->rule_has_calls[state_rule[s]] = 1;
  }
  g->rule_start = std::move(rule_start);
  g->state_rule = std::move(state_rule);
  g->accepting = std::move(accepting);
  g->byte_class = std::move(byte_class);
  g->transitions = std::move(transitions);
  g->call_offsets = std::move(call_offsets);
  g->call_rules = std::move(call_rules);
  g->call_targets = std::move(call_targets);
  return g;
}

}  // namespace llmkit::grammar
