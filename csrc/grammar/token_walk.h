// Per-item token classification (accepted / uncertain / rejected) by walking the vocabulary trie,
// and the depth-L state classes that key its cache.
#pragma once

#include <cstdint>
#include <vector>

#include "grammar/grammar_tables.h"
#include "grammar/vocabulary.h"

namespace llmkit::grammar {

struct MaskEntry {
  std::vector<uint32_t> accepted;  // [ceil(vocab / 32)] bit set: read without leaving the item's rule
  // Trie nodes (preorder, disjoint subtrees) whose tokens' fate depends on the rule's callers.
  std::vector<int32_t> uncertain_subtrees;
};

MaskEntry classify_tokens(const GrammarTables& g, const Vocabulary& v, int state);

// States that no byte string of length <= depth (entering callees, which read >= 1 byte) tells apart
// get the same class; their MaskEntry is identical for every token of at most `depth` bytes.
std::vector<int32_t> depth_limited_classes(const GrammarTables& g, int depth);

// Moore refinement of the rows of a dense [rows, symbols] transition table (every entry a row index) from
// an initial partition: rows that no string of at most max_rounds symbols (any length when max_rounds < 0)
// tells apart share a block; blocks are numbered by first appearance. The compiler's DFA minimization
// (llmkit.core.structured.dfa.refine is the specification).
std::vector<int64_t> refine_rows(const int64_t* table, int64_t rows, int64_t symbols, const int64_t* initial,
                                 int64_t max_rounds);

}  // namespace llmkit::grammar
