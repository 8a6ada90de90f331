// A grammar's IR (the Python objects of llmkit.core.structured.ir) -> its Thompson NFA, built in C++ by
// walking those objects through the C API (the GIL held). llmkit.core.structured.automata.rule_nfas is the
// specification: the same construction (non-recursive rules inlined, recursive ones called, a nullable call
// also skippable, bounded repetitions copied, rule-free pieces recorded and replayed), so the same language
// for every rule. What stays in Python is asked for through two hooks: the product automaton of an
// exclusion or avoidance, and the minimized DFA of a piece another compilation emitted.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "grammar/nfa_compiler.h"

namespace llmkit {

struct IrNfaInputs {
  pybind11::dict rules;              // rule name -> expression (Grammar.rules)
  std::string root;                  // Grammar.root
  pybind11::object asked_calls;      // Grammar.called: rules kept as calls though not recursive
  std::string start_rule;            // the name given to the start rule (it refers to the root)
  pybind11::object start_expr;       // Ref(root)
  pybind11::object product_fragment; // expr -> automata Fragment (an Exclude's or Avoid's product)
  pybind11::object minimal_fragment; // expr -> automata Fragment of its minimized DFA, or None
  pybind11::tuple types;             // (Bytes, Seq, Alt, Repeat, Ref, Exclude, Avoid)
  int32_t max_nfa_states = 0;        // per rule, as automata.MAX_NFA_STATES
};

// The plan first (automata.nfa_plan: undefined references refused as Grammar.check_references does, the
// rules the start rule reaches, the recursive and the nullable ones), then the NFA and its rule names in
// output order (the start rule, then the called rules sorted by name). GrammarBuildError for a grammar
// that refers to an undefined rule or is too large; Python errors (from the hooks or the objects) as
// pybind11::error_already_set.
grammar::RuleNfa rule_nfa_from_ir(const IrNfaInputs& inputs, std::vector<std::string>& names);

}  // namespace llmkit
