#include "grammar/token_walk.h"

#include <algorithm>
#include <map>
#include <set>

namespace llmkit::grammar {

namespace {

constexpr size_t kMaxLocalStack = 32;
constexpr size_t kMaxConfigurations = 512;

using Config = std::vector<int32_t>;  // return states of entered callees, then the current state

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
  int num_blocks = -1;
  for (int round = 0; round <= depth; ++round) {
    std::map<std::vector<int32_t>, int32_t> ids;
    std::vector<int32_t> refined(n);
    std::vector<int32_t> signature;
    for (int s = 0; s < n; ++s) {
      signature.clear();
      signature.push_back(blocks[s]);
      const size_t row = static_cast<size_t>(s) * g.num_classes;
      for (int c = 0; c < g.num_classes; ++c) {
        const int32_t t = g.transitions[row + c];
        signature.push_back(t < 0 ? -1 : blocks[t]);
      }
      std::vector<std::pair<int32_t, int32_t>> calls;
      for (int32_t e = g.call_offsets[s]; e < g.call_offsets[s + 1]; ++e) {
        calls.emplace_back(g.call_rules[e], blocks[g.call_targets[e]]);
      }
      std::sort(calls.begin(), calls.end());
      for (const auto& [rule, block] : calls) {
        signature.push_back(-2 - rule);
        signature.push_back(block);
      }
      refined[s] = ids.emplace(signature, static_cast<int32_t>(ids.size())).first->second;
    }
    const int count = static_cast<int>(ids.size());
    blocks.swap(refined);
    if (count == num_blocks) break;
    num_blocks = count;
  }
  return blocks;
}

}  // namespace llmkit::grammar
