// Trimming of a rule's DFA: states unreachable from the start or unable to reach an accepting state go,
// the rest are numbered breadth first from the start. The native compiler does not minimize: determinized
// from NFAs that replay shared pieces as their minimal DFAs, its rule DFAs are within a few percent of
// minimal on the benchmark schemas, and exact minimization cost 40% of the native compile.
#pragma once

#include <cstdint>

#include "grammar/rule_dfa.h"

namespace llmkit::grammar::compiler {

Dfa trim(const Dfa& d, int32_t classes);

}  // namespace llmkit::grammar::compiler
