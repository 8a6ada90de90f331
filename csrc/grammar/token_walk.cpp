#include "grammar/token_walk.h"

#include <algorithm>
#include <set>

namespace llmkit::grammar {

namespace {

constexpr size_t kMaxLocalStack = 32;
constexpr size_t kMaxConfigurations = 512;

using Config = std::vector<int32_t>;  // return states of entered callees, then the current state

// FNV-1a over a signature, finished by a multiplicative mix whose high bits pick an open-addressing slot.
template <typename T>
uint64_t signature_hash(const T* begin, int64_t length) {
  uint64_t hash = 1469598103934665603ull;
  for (int64_t k = 0; k < length; ++k) hash = (hash ^ static_cast<uint64_t>(begin[k])) * 1099511628211ull;
  hash ^= hash >> 29;
  return hash * 0x9E3779B97F4A7C15ull;
}

// The first slot to probe for a hash in a table of 2^bits slots.
size_t first_slot(uint64_t hash, int bits) { return static_cast<size_t>(hash >> (64 - bits)); }

void set_bit(std::vector<uint32_t>& words, int32_t token) { words[token >> 5] |= 1u << (token & 31); }

void accept_tokens_at(const Vocabulary& v, int32_t node, std::vector<uint32_t>& accepted) {
  for (int32_t k = v.token_offsets[node]; k < v.token_offsets[node + 1]; ++k) set_bit(accepted, v.node_tokens[k]);
}

// A rule without call edges: one DFA state per trie depth, depth first, dead prefixes pruned.
void walk_without_calls(const GrammarTables& g, const Vocabulary& v, int start, MaskEntry& out) {
  const bool bottom_is_start = g.is_start_rule(start);
  std::vector<int32_t> state(v.max_token_length + 1, -1);
  std::vector<uint8_t> ends(v.max_token_length + 1, 0);
  state[0] = start;
  ends[0] = g.accepting[start] && !bottom_is_start;
  const int32_t nodes = static_cast<int32_t>(v.node_byte.size());
  for (int32_t node = 1; node < nodes;) {
    const int d = v.node_depth[node];
    const int32_t next = g.next(state[d - 1], v.node_byte[node]);
    if (next < 0) {
      if (ends[d - 1]) out.uncertain_subtrees.push_back(node);
      node = v.subtree_end[node];
      continue;
    }
    state[d] = next;
    ends[d] = ends[d - 1] || (g.accepting[next] && !bottom_is_start);
    accept_tokens_at(v, node, out.accepted);
    ++node;
  }
}

// Enter callees and leave finished ones; returns whether the bottom rule can end here (or the walk gave up).
bool close(const GrammarTables& g, std::set<Config>& configs, bool bottom_is_start) {
  std::vector<Config> stack(configs.begin(), configs.end());
  configs.clear();
  bool ends = false;
  while (!stack.empty()) {
    Config config = std::move(stack.back());
    stack.pop_back();
    if (!configs.insert(config).second) continue;
    if (configs.size() > kMaxConfigurations) return true;
    const int32_t top = config.back();
    for (int32_t e = g.call_offsets[top]; e < g.call_offsets[top + 1]; ++e) {
      if (config.size() >= kMaxLocalStack) {
        ends = true;
        continue;
      }
      Config entered(config);
      entered.back() = g.call_targets[e];
      entered.push_back(g.rule_start[g.call_rules[e]]);
      stack.push_back(std::move(entered));
    }
    if (g.accepting[top]) {
      if (config.size() > 1) {
        stack.emplace_back(config.begin(), config.end() - 1);
      } else if (!bottom_is_start) {
        ends = true;
      }
    }
  }
  return ends;
}

// Rules with call edges: sets of local stacks per trie depth.
void walk_with_calls(const GrammarTables& g, const Vocabulary& v, int start, MaskEntry& out) {
  const bool bottom_is_start = g.is_start_rule(start);
  std::vector<std::set<Config>> level(v.max_token_length + 1);
  std::vector<uint8_t> ends(v.max_token_length + 1, 0);
  level[0].insert(Config{start});
  ends[0] = close(g, level[0], bottom_is_start);
  const int32_t nodes = static_cast<int32_t>(v.node_byte.size());
  for (int32_t node = 1; node < nodes;) {
    const int d = v.node_depth[node];
    std::set<Config>& moved = level[d];
    moved.clear();
    for (const Config& config : level[d - 1]) {
      const int32_t next = g.next(config.back(), v.node_byte[node]);
      if (next >= 0) {
        Config advanced(config);
        advanced.back() = next;
        moved.insert(std::move(advanced));
      }
    }
    if (moved.empty()) {
      if (ends[d - 1]) out.uncertain_subtrees.push_back(node);
      node = v.subtree_end[node];
      continue;
    }
    ends[d] = close(g, moved, bottom_is_start) || ends[d - 1];
    accept_tokens_at(v, node, out.accepted);
    ++node;
  }
}

}  // namespace

MaskEntry classify_tokens(const GrammarTables& g, const Vocabulary& v, int state) {
  MaskEntry out;
  out.accepted.assign((v.vocab_size + 31) / 32, 0u);
  if (g.rule_has_calls[g.state_rule[state]]) {
    walk_with_calls(g, v, state, out);
  } else {
    walk_without_calls(g, v, state, out);
  }
  return out;  // the walks skip each uncertain subtree, so the subtrees are disjoint and in preorder
}

std::vector<int32_t> depth_limited_classes(const GrammarTables& g, int depth) {
  const int n = g.num_states;
  std::vector<int32_t> blocks(n);
  for (int s = 0; s < n; ++s) blocks[s] = (g.accepting[s] ? 1 : 0) | (g.is_start_rule(s) ? 2 : 0);
  // Each round, a state's signature is its block, its (byte class, successor's block) edges and its
  // (rule, return block) calls sorted; equal signatures share the next round's block, numbered by first appearance. The
  // signatures live in one flat buffer and are deduplicated by an open-addressing table over it.
  std::vector<int32_t> signatures, offsets(n + 1), refined(n);
  int bits = 4;
  while ((size_t{1} << bits) < 2 * static_cast<size_t>(n)) ++bits;
  const size_t capacity = size_t{1} << bits;
  std::vector<int32_t> table(capacity);
  std::vector<uint64_t> hashes(n);
  std::vector<std::pair<int32_t, int32_t>> calls;
  // The byte edges of each state as (class, target) pairs: most rows of the dense table are mostly -1.
  std::vector<int32_t> edge_offsets(n + 1, 0), edge_classes, edge_targets;
  for (int s = 0; s < n; ++s) {
    const size_t row = static_cast<size_t>(s) * g.num_classes;
    for (int c = 0; c < g.num_classes; ++c) {
      if (g.transitions[row + c] >= 0) {
        edge_classes.push_back(c);
        edge_targets.push_back(g.transitions[row + c]);
      }
    }
    edge_offsets[s + 1] = static_cast<int32_t>(edge_classes.size());
  }
  int num_blocks = -1;
  for (int round = 0; round <= depth; ++round) {
    signatures.clear();
    for (int s = 0; s < n; ++s) {
      offsets[s] = static_cast<int32_t>(signatures.size());
      signatures.push_back(blocks[s]);
      for (int32_t e = edge_offsets[s]; e < edge_offsets[s + 1]; ++e) {
        signatures.push_back(edge_classes[e]);
        signatures.push_back(blocks[edge_targets[e]]);
      }
      calls.clear();
      for (int32_t e = g.call_offsets[s]; e < g.call_offsets[s + 1]; ++e) {
        calls.emplace_back(g.call_rules[e], blocks[g.call_targets[e]]);
      }
      std::sort(calls.begin(), calls.end());
      for (const auto& [rule, block] : calls) {
        signatures.push_back(-2 - rule);
        signatures.push_back(block);
      }
    }
    offsets[n] = static_cast<int32_t>(signatures.size());
    std::fill(table.begin(), table.end(), -1);
    int count = 0;
    for (int s = 0; s < n; ++s) {
      const int32_t* begin = signatures.data() + offsets[s];
      const int32_t length = offsets[s + 1] - offsets[s];
      const uint64_t hash = signature_hash(begin, length);
      hashes[s] = hash;
      for (size_t slot = first_slot(hash, bits);; slot = (slot + 1) & (capacity - 1)) {
        const int32_t other = table[slot];
        if (other < 0) {
          table[slot] = s;
          refined[s] = count++;
          break;
        }
        if (hashes[other] == hash && offsets[other + 1] - offsets[other] == length &&
            std::equal(begin, begin + length, signatures.data() + offsets[other])) {
          refined[s] = refined[other];
          break;
        }
      }
    }
    blocks.swap(refined);
    if (count == num_blocks || count == n) break;  // stable, or every state apart: no round splits more
    num_blocks = count;
  }
  return blocks;
}

std::vector<int64_t> refine_rows(const int64_t* table, int64_t rows, int64_t symbols, const int64_t* initial,
                                 int64_t max_rounds) {
  // A row's signature: its block, then (symbol, successor's block) for the successors whose block is not
  // the one most entries lead to (row `common`'s block, typically the dead sink's): exact, since the
  // omitted entries all have that block, and short.
  std::vector<int64_t> hits(rows, 0);
  for (int64_t k = 0; k < rows * symbols; ++k) ++hits[table[k]];
  const int64_t common = std::max_element(hits.begin(), hits.end()) - hits.begin();
  int bits = 4;
  while ((size_t{1} << bits) < 2 * static_cast<size_t>(rows)) ++bits;
  const size_t capacity = size_t{1} << bits;
  std::vector<int64_t> slots(capacity), signatures, offsets(rows + 1), blocks(rows), refined(rows);
  std::vector<uint64_t> hashes(rows);
  // Numbers rows by the first appearance of their signature; returns how many distinct ones there are.
  auto number = [&](std::vector<int64_t>& out) {
    std::fill(slots.begin(), slots.end(), -1);
    int64_t count = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* begin = signatures.data() + offsets[r];
      const int64_t length = offsets[r + 1] - offsets[r];
      const uint64_t hash = signature_hash(begin, length);
      hashes[r] = hash;
      for (size_t slot = first_slot(hash, bits);; slot = (slot + 1) & (capacity - 1)) {
        const int64_t other = slots[slot];
        if (other < 0) {
          slots[slot] = r;
          out[r] = count++;
          break;
        }
        if (hashes[other] == hash && offsets[other + 1] - offsets[other] == length &&
            std::equal(begin, begin + length, signatures.data() + offsets[other])) {
          out[r] = out[other];
          break;
        }
      }
    }
    return count;
  };
  signatures.assign(initial, initial + rows);
  for (int64_t r = 0; r <= rows; ++r) offsets[r] = r;
  int64_t count = number(blocks);
  for (int64_t round = 0; max_rounds < 0 || round < max_rounds; ++round) {
    signatures.clear();
    const int64_t omitted = blocks[common];
    for (int64_t r = 0; r < rows; ++r) {
      offsets[r] = static_cast<int64_t>(signatures.size());
      signatures.push_back(blocks[r]);
      for (int64_t k = 0; k < symbols; ++k) {
        const int64_t block = blocks[table[r * symbols + k]];
        if (block != omitted) {
          signatures.push_back(k);
          signatures.push_back(block);
        }
      }
    }
    offsets[rows] = static_cast<int64_t>(signatures.size());
    const int64_t refined_count = number(refined);
    blocks.swap(refined);
    if (refined_count == count) break;
    count = refined_count;
  }
  return blocks;
}

}  // namespace llmkit::grammar
