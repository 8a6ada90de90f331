#include "grammar/nfa_compiler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "grammar/dfa_trim.h"
#include "grammar/rule_dfa.h"
#include "grammar/subset_construction.h"

namespace llmkit::grammar {

namespace {

using compiler::Dfa;

class Compiler {
 public:
  Compiler(const RuleNfa& nfa, int32_t max_dfa_states)
      : subsets_(nfa, max_dfa_states), rule_entry_(nfa.rule_entry), rule_final_(nfa.rule_final) {}

  CompiledTables run();

 private:
  Dfa trim(const Dfa& d) const { return compiler::trim(d, subsets_.num_classes()); }

  compiler::SubsetConstruction subsets_;
  const std::vector<int32_t>& rule_entry_;
  const std::vector<int32_t>& rule_final_;
};

// The same language minus the empty string: a fresh, non-accepting start state.
Dfa without_empty_start(const Dfa& d, int32_t C) {
  if (!d.accepting[0]) return d;
  Dfa out;
  for (int32_t s = 0; s <= d.n; ++s) out.add_state(C);
  for (int32_t s = 0; s <= d.n; ++s) {
    const int32_t from = s == 0 ? 0 : s - 1;
    out.accepting[s] = s == 0 ? 0 : d.accepting[from];
    for (int32_t c = 0; c < C; ++c) {
      const int32_t t = d.next[static_cast<size_t>(from) * C + c];
      out.next[static_cast<size_t>(s) * C + c] = t >= 0 ? t + 1 : -1;
    }
    for (const auto& [rule, t] : d.calls[from]) out.calls[s].emplace_back(rule, t + 1);
  }
  return out;
}

bool accepts_something(const Dfa& d, int32_t C, const std::vector<uint8_t>& nonempty) {
  std::vector<uint8_t> seen(d.n, 0);
  std::vector<int32_t> stack{0};
  seen[0] = 1;
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    if (d.accepting[s]) return true;
    auto visit = [&](int32_t t) {
      if (t >= 0 && !seen[t]) {
        seen[t] = 1;
        stack.push_back(t);
      }
    };
    for (int32_t c = 0; c < C; ++c) visit(d.next[static_cast<size_t>(s) * C + c]);
    for (const auto& [rule, t] : d.calls[s]) {
      if (nonempty[rule]) visit(t);
    }
  }
  return false;
}

CompiledTables Compiler::run() {
  const int32_t R = static_cast<int32_t>(rule_entry_.size());
  const int32_t C = subsets_.num_classes();
  std::vector<Dfa> dfas(R);
  for (int32_t r = 0; r < R; ++r) {
    Dfa d = subsets_.determinize(rule_entry_[r], rule_final_[r]);  // trimmed as it is built
    dfas[r] = r == 0 ? std::move(d) : without_empty_start(d, C);
  }
  // Rules that match nothing: their call edges go; a rule that loses one is trimmed again.
  std::vector<uint8_t> nonempty(R, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < R; ++r) {
      if (!nonempty[r] && accepts_something(dfas[r], C, nonempty)) nonempty[r] = changed = true;
    }
  }
  if (!nonempty[0]) throw GrammarBuildError("the grammar matches no string at all");
  for (int32_t r = 0; r < R; ++r) {
    if (!nonempty[r]) continue;
    bool pruned = false;
    for (auto& row : dfas[r].calls) {
      const size_t before = row.size();
      row.erase(std::remove_if(row.begin(), row.end(), [&](const auto& edge) { return !nonempty[edge.first]; }),
                row.end());
      pruned |= row.size() != before;
    }
    if (pruned) dfas[r] = trim(dfas[r]);
  }
  std::vector<uint8_t> reachable(R, 0);
  std::vector<int32_t> stack{0};
  reachable[0] = 1;
  while (!stack.empty()) {
    const int32_t r = stack.back();
    stack.pop_back();
    for (const auto& row : dfas[r].calls) {
      for (const auto& [rule, t] : row) {
        if (!reachable[rule]) {
          reachable[rule] = 1;
          stack.push_back(rule);
        }
      }
    }
  }
  CompiledTables out;
  std::vector<int32_t> out_rule(R, -1), base(R, 0);
  int32_t total = 0;
  for (int32_t r = 0; r < R; ++r) {
    if (!reachable[r]) continue;
    out_rule[r] = static_cast<int32_t>(out.kept_rules.size());
    out.kept_rules.push_back(r);
    base[r] = total;
    out.rule_start.push_back(total);
    total += dfas[r].n;
  }
  // Classes whose columns agree in every kept rule are one class of the flat table: columns hashed in one
  // pass over the rows, compared in full only when their hashes agree.
  std::vector<uint64_t> column_hash(C, 1469598103934665603ull);
  for (int32_t r : out.kept_rules) {
    for (int32_t s = 0; s < dfas[r].n; ++s) {
      const int32_t* row = dfas[r].next.data() + static_cast<size_t>(s) * C;
      for (int32_t c = 0; c < C; ++c) column_hash[c] = (column_hash[c] ^ static_cast<uint32_t>(row[c])) * 1099511628211ull;
    }
  }
  auto same_column = [&](int32_t a, int32_t b) {
    for (int32_t r : out.kept_rules) {
      const std::vector<int32_t>& next = dfas[r].next;
      for (size_t i = 0; i < next.size(); i += C) {
        if (next[i + a] != next[i + b]) return false;
      }
    }
    return true;
  };
  std::vector<int32_t> merged(C, -1), representatives;  // representatives: the first class of each column
  for (int32_t c = 0; c < C; ++c) {
    for (size_t k = 0; k < representatives.size() && merged[c] < 0; ++k) {
      const int32_t other = representatives[k];
      if (column_hash[other] == column_hash[c] && same_column(other, c)) merged[c] = static_cast<int32_t>(k);
    }
    if (merged[c] < 0) {
      merged[c] = static_cast<int32_t>(representatives.size());
      representatives.push_back(c);
    }
  }
  out.num_classes = static_cast<int32_t>(representatives.size());
  out.byte_class.resize(256);
  for (int b = 0; b < 256; ++b) out.byte_class[b] = merged[subsets_.byte_class()[b]];
  const int32_t K = out.num_classes;
  out.transitions.resize(static_cast<size_t>(total) * K);
  out.state_rule.resize(total);
  out.accepting.resize(total);
  out.call_offsets.assign(static_cast<size_t>(total) + 1, 0);
  for (int32_t r : out.kept_rules) {
    const Dfa& d = dfas[r];
    for (int32_t s = 0; s < d.n; ++s) {
      const int32_t g = base[r] + s;
      out.state_rule[g] = out_rule[r];
      out.accepting[g] = d.accepting[s];
      const int32_t* row = d.next.data() + static_cast<size_t>(s) * C;
      int32_t* out_row = out.transitions.data() + static_cast<size_t>(g) * K;
      const int32_t offset = base[r];
      for (int32_t k = 0; k < K; ++k) {  // a merged class's columns agree: its first one speaks for it
        const int32_t t = row[representatives[k]];
        out_row[k] = (offset + t) | (t >> 31);  // -1 stays -1, without a branch (edges are sparse and random)
      }
      for (const auto& [rule, t] : d.calls[s]) {
        out.call_rules.push_back(out_rule[rule]);
        out.call_targets.push_back(base[r] + t);
      }
      out.call_offsets[g + 1] = static_cast<int32_t>(out.call_rules.size());
    }
  }
  return out;
}

void check_edges(const char* what, const std::vector<int32_t>& src, const std::vector<int32_t>& dst, int32_t n) {
  if (src.size() != dst.size()) throw std::invalid_argument(std::string(what) + ": sources and targets differ in length");
  for (size_t e = 0; e < src.size(); ++e) {
    if (src[e] < 0 || src[e] >= n || dst[e] < 0 || dst[e] >= n) {
      throw std::invalid_argument(std::string(what) + " edge " + std::to_string(e) + " names a state outside 0.." +
                                  std::to_string(n - 1));
    }
  }
}

}  // namespace

CompiledTables compile_rule_nfas(const RuleNfa& nfa, int32_t max_dfa_states) {
  const int32_t n = nfa.num_states;
  if (n <= 0) throw std::invalid_argument("the NFA has no states");
  check_edges("epsilon", nfa.eps_src, nfa.eps_dst, n);
  check_edges("byte", nfa.byte_src, nfa.byte_dst, n);
  check_edges("call", nfa.call_src, nfa.call_dst, n);
  if (nfa.masks.size() % 4 != 0) throw std::invalid_argument("masks must be 4 uint64 words each");
  const int64_t num_masks = static_cast<int64_t>(nfa.masks.size() / 4);
  if (nfa.byte_mask.size() != nfa.byte_src.size()) throw std::invalid_argument("one mask per byte edge");
  for (int32_t m : nfa.byte_mask) {
    if (m < 0 || m >= num_masks) throw std::invalid_argument("a byte edge names mask " + std::to_string(m));
  }
  const int64_t R = static_cast<int64_t>(nfa.rule_entry.size());
  if (R == 0 || nfa.rule_final.size() != nfa.rule_entry.size()) {
    throw std::invalid_argument("rule_entry and rule_final must name the same rules, at least the start rule");
  }
  for (int64_t r = 0; r < R; ++r) {
    if (nfa.rule_entry[r] < 0 || nfa.rule_entry[r] >= n || nfa.rule_final[r] < 0 || nfa.rule_final[r] >= n) {
      throw std::invalid_argument("rule " + std::to_string(r) + "'s entry or final state is outside the NFA");
    }
  }
  if (nfa.call_rule.size() != nfa.call_src.size()) throw std::invalid_argument("one rule per call edge");
  for (int32_t rule : nfa.call_rule) {
    if (rule <= 0 || rule >= R) throw std::invalid_argument("a call edge names rule " + std::to_string(rule));
  }
  return Compiler(nfa, max_dfa_states).run();
}

}  // namespace llmkit::grammar
