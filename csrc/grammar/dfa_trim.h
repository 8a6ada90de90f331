// Trimming of a rule's DFA: states unreachable from the start or unable to reach an accepting state go,
// the rest are numbered breadth first from the start. Subset construction trims as it builds; this is for
// a rule whose call edges into empty rules were pruned. The native compiler does not minimize:
// determinized from NFAs that replay shared pieces as their minimal DFAs, its rule DFAs are within a few
// percent of minimal on the benchmark schemas, and exact minimization cost 40-55% of the native compile.
#pragma once

#include <cstdint>

#include "grammar/rule_dfa.h"

namespace llmkit::grammar::compiler {

Dfa trim(const Dfa& d, int32_t classes);

}  // namespace llmkit::grammar::compiler
