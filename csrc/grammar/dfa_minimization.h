// Minimization of a rule's DFA: Valmari and Lehtinen's partition refinement for DFAs of at most
// full_minimization_limit states (exact, as dfa.refine), merging identical rows for larger ones (sound,
// as dfa.merge_identical_rows); dead and unreachable states are trimmed, states numbered breadth first.
#pragma once

#include <cstdint>

#include "grammar/rule_dfa.h"

namespace llmkit::grammar::compiler {

Dfa minimize(const Dfa& d, int32_t classes, int32_t full_minimization_limit);

}  // namespace llmkit::grammar::compiler
