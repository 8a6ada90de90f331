#include "grammar/nfa_compiler.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>


namespace llmkit::grammar {

namespace {

struct Csr {
  std::vector<int32_t> offsets;
  std::vector<int32_t> order;  // edge indices grouped by source, in input order within a source
  void build(const std::vector<int32_t>& src, int32_t n) {
    offsets.assign(static_cast<size_t>(n) + 1, 0);
    for (int32_t s : src) ++offsets[s + 1];
    for (int32_t i = 0; i < n; ++i) offsets[i + 1] += offsets[i];
    order.resize(src.size());
    std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
    for (size_t e = 0; e < src.size(); ++e) order[fill[src[e]]++] = static_cast<int32_t>(e);
  }
};

struct VectorHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull ^ v.size();
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct Dfa {
  int32_t n = 0;
  std::vector<uint8_t> accepting;
  std::vector<int32_t> next;                                 // [n * C], -1 = no edge
  std::vector<std::vector<std::pair<int32_t, int32_t>>> calls;  // per state: (rule, target), by rule

  void resize(int32_t states, int32_t classes) {
    n = states;
    accepting.assign(states, 0);
    next.assign(static_cast<size_t>(states) * classes, -1);
    calls.assign(states, {});
  }
  void add_state(int32_t classes) {
    ++n;
    accepting.push_back(0);
    next.resize(static_cast<size_t>(n) * classes, -1);
    calls.emplace_back();
  }
};

Dfa empty_dfa(int32_t classes) {
  Dfa d;
  d.add_state(classes);
  return d;
}

class Compiler {
 public:
  Compiler(const RuleNfa& nfa, int32_t max_dfa_states, int32_t full_limit)
      : nfa_(nfa), max_states_(max_dfa_states), full_limit_(full_limit), stamp_(nfa.num_states, 0) {
    eps_.build(nfa.eps_src, nfa.num_states);
    bytes_.build(nfa.byte_src, nfa.num_states);
    calls_.build(nfa.call_src, nfa.num_states);
    byte_classes();
  }

  CompiledTables run();

 private:
  void byte_classes();
  void closure(std::vector<int32_t>& set);
  Dfa determinize(int32_t entry, int32_t final_state);
  Dfa minimize(const Dfa& d) const;
  std::vector<uint8_t> live_states(const Dfa& d) const;

  const RuleNfa& nfa_;
  int32_t max_states_, full_limit_;
  Csr eps_, bytes_, calls_;
  std::vector<uint32_t> stamp_;
  uint32_t epoch_ = 0;
  std::vector<int32_t> byte_class_;                  // [256]
  int32_t classes_ = 0;
  std::vector<std::vector<int32_t>> mask_classes_;  // per mask: the classes it is the union of
};

bool has_byte(const uint64_t* mask, int b) { return (mask[b >> 6] >> (b & 63)) & 1; }

void Compiler::byte_classes() {
  // The coarsest partition of the bytes that every mask is a union of parts of.
  byte_class_.assign(256, 0);
  int32_t count = 1;
  const size_t num_masks = nfa_.masks.size() / 4;
  std::vector<int32_t> remap;
  for (size_t m = 0; m < num_masks; ++m) {
    const uint64_t* mask = nfa_.masks.data() + 4 * m;
    remap.assign(2 * static_cast<size_t>(count), -1);
    int32_t next = 0;
    for (int b = 0; b < 256; ++b) {
      int32_t& slot = remap[2 * byte_class_[b] + has_byte(mask, b)];
      if (slot < 0) slot = next++;
      byte_class_[b] = slot;
    }
    count = next;
  }
  classes_ = count;
  mask_classes_.assign(num_masks, {});
  for (size_t m = 0; m < num_masks; ++m) {
    const uint64_t* mask = nfa_.masks.data() + 4 * m;
    std::vector<uint8_t> seen(classes_, 0);
    for (int b = 0; b < 256; ++b) {
      if (has_byte(mask, b) && !seen[byte_class_[b]]) {
        seen[byte_class_[b]] = 1;
        mask_classes_[m].push_back(byte_class_[b]);
      }
    }
  }
}

void Compiler::closure(std::vector<int32_t>& set) {
  if (++epoch_ == 0) {
    std::fill(stamp_.begin(), stamp_.end(), 0);
    epoch_ = 1;
  }
  for (int32_t s : set) stamp_[s] = epoch_;
  for (size_t i = 0; i < set.size(); ++i) {
    const int32_t s = set[i];
    for (int32_t k = eps_.offsets[s]; k < eps_.offsets[s + 1]; ++k) {
      const int32_t t = nfa_.eps_dst[eps_.order[k]];
      if (stamp_[t] != epoch_) {
        stamp_[t] = epoch_;
        set.push_back(t);
      }
    }
  }
  std::sort(set.begin(), set.end());
}

Dfa Compiler::determinize(int32_t entry, int32_t final_state) {
  const int32_t C = classes_;
  Dfa d;
  std::vector<std::vector<int32_t>> sets;
  std::unordered_map<std::vector<int32_t>, int32_t, VectorHash> index;  // closed set -> state
  std::unordered_map<std::vector<int32_t>, int32_t, VectorHash> moved;  // raw targets -> state
  auto intern = [&](std::vector<int32_t>&& closed) {
    auto hit = index.find(closed);
    if (hit != index.end()) return hit->second;
    const int32_t id = d.n;
    if (id >= max_states_) {
      throw GrammarBuildError("the grammar is too large: a rule's DFA passes " + std::to_string(max_states_) +
                              " states");
    }
    d.add_state(C);
    d.accepting[id] = std::binary_search(closed.begin(), closed.end(), final_state);
    index.emplace(closed, id);
    sets.push_back(std::move(closed));
    return id;
  };
  std::vector<int32_t> first{entry};
  closure(first);
  intern(std::move(first));
  // Per state: the distinct masks on its NFA edges (usually a handful) split the classes into local
  // parts by which masks hold them; each part's targets are gathered once, not once per class.
  std::vector<uint64_t> signature(C, 0);
  std::vector<int32_t> local_masks, edges_mask, edges_target, bucket;
  struct Part {
    uint64_t signature;
    int32_t before, target;  // before: the class's target from earlier groups of 64 masks, or -1
  };
  std::vector<Part> parts;
  std::vector<int32_t> touched;
  std::vector<std::pair<int32_t, int32_t>> calls;
  for (int32_t state = 0; state < d.n; ++state) {
    local_masks.clear(), edges_mask.clear(), edges_target.clear(), calls.clear();
    for (int32_t s : sets[state]) {
      for (int32_t k = bytes_.offsets[s]; k < bytes_.offsets[s + 1]; ++k) {
        const int32_t e = bytes_.order[k];
        int32_t local = static_cast<int32_t>(std::find(local_masks.begin(), local_masks.end(), nfa_.byte_mask[e]) -
                                             local_masks.begin());
        if (local == static_cast<int32_t>(local_masks.size())) local_masks.push_back(nfa_.byte_mask[e]);
        edges_mask.push_back(local);
        edges_target.push_back(nfa_.byte_dst[e]);
      }
      for (int32_t k = calls_.offsets[s]; k < calls_.offsets[s + 1]; ++k) {
        const int32_t e = calls_.order[k];
        calls.emplace_back(nfa_.call_rule[e], nfa_.call_dst[e]);
      }
    }
    int32_t* row = d.next.data() + static_cast<size_t>(state) * C;
    for (size_t group = 0; group < local_masks.size(); group += 64) {  // 64 masks per signature word
      const size_t group_end = std::min(local_masks.size(), group + 64);
      touched.clear();
      for (size_t i = group; i < group_end; ++i) {
        for (int32_t c : mask_classes_[local_masks[i]]) {
          if (!signature[c]) touched.push_back(c);
          signature[c] |= uint64_t{1} << (i - group);
        }
      }
      parts.clear();
      for (int32_t c : touched) {
        auto part = std::find_if(parts.begin(), parts.end(),
                                 [&](const Part& p) { return p.signature == signature[c] && p.before == row[c]; });
        if (part == parts.end()) {
          bucket.clear();
          for (size_t e = 0; e < edges_mask.size(); ++e) {
            const size_t local = static_cast<size_t>(edges_mask[e]);
            if (local >= group && local < group_end && (signature[c] >> (local - group)) & 1) {
              bucket.push_back(edges_target[e]);
            }
          }
          if (row[c] >= 0) {  // more than 64 masks in this state: the class's targets from earlier groups too
            for (int32_t t : sets[row[c]]) bucket.push_back(t);
          }
          std::sort(bucket.begin(), bucket.end());
          bucket.erase(std::unique(bucket.begin(), bucket.end()), bucket.end());
          int32_t target;
          auto hit = moved.find(bucket);
          if (hit != moved.end()) {
            target = hit->second;
          } else {
            std::vector<int32_t> closed = bucket;
            closure(closed);
            target = intern(std::move(closed));
            row = d.next.data() + static_cast<size_t>(state) * C;  // intern may have grown the table
            moved.emplace(bucket, target);
          }
          parts.push_back(Part{signature[c], row[c], target});
          part = parts.end() - 1;
        }
        row[c] = part->target;
      }
      for (int32_t c : touched) signature[c] = 0;
    }
    std::sort(calls.begin(), calls.end());
    for (size_t i = 0; i < calls.size();) {
      size_t j = i;
      std::vector<int32_t> targets;
      while (j < calls.size() && calls[j].first == calls[i].first) targets.push_back(calls[j++].second);
      targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
      closure(targets);
      const int32_t target = intern(std::move(targets));
      d.calls[state].emplace_back(calls[i].first, target);
      i = j;
    }
  }
  return d;
}

std::vector<uint8_t> Compiler::live_states(const Dfa& d) const {
  // Reachable from the start and able to reach an accepting state.
  const int32_t C = classes_;
  std::vector<uint8_t> reachable(d.n, 0), live(d.n, 0);
  std::vector<int32_t> stack{0}, offsets(static_cast<size_t>(d.n) + 1, 0);
  reachable[0] = 1;
  auto each_edge = [&](int32_t s, auto&& visit) {
    const int32_t* row = d.next.data() + static_cast<size_t>(s) * C;
    for (int32_t c = 0; c < C; ++c) {
      if (row[c] >= 0) visit(row[c]);
    }
    for (const auto& [rule, t] : d.calls[s]) visit(t);
  };
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    each_edge(s, [&](int32_t t) {
      ++offsets[t + 1];
      if (!reachable[t]) {
        reachable[t] = 1;
        stack.push_back(t);
      }
    });
  }
  for (int32_t s = 0; s < d.n; ++s) offsets[s + 1] += offsets[s];
  std::vector<int32_t> preds(offsets[d.n]), fill(offsets.begin(), offsets.end() - 1);
  for (int32_t s = 0; s < d.n; ++s) {
    if (reachable[s]) each_edge(s, [&](int32_t t) { preds[fill[t]++] = s; });
  }
  for (int32_t s = 0; s < d.n; ++s) {
    if (reachable[s] && d.accepting[s]) {
      live[s] = 1;
      stack.push_back(s);
    }
  }
  while (!stack.empty()) {
    const int32_t t = stack.back();
    stack.pop_back();
    for (int32_t k = offsets[t]; k < offsets[t + 1]; ++k) {
      if (!live[preds[k]]) {
        live[preds[k]] = 1;
        stack.push_back(preds[k]);
      }
    }
  }
  return live;
}

// Valmari and Lehtinen's partition refinement for partial DFAs ("Efficient minimization of DFAs with
// partial transition functions", 2008), O(m log n): the coarsest partition of the states that separates
// accepting from non-accepting ones and in which equivalent states have, for every symbol, either no
// edge or edges into the same block. That is dfa.refine's Moore partition (a missing edge = the sink,
// a block of its own), without its one pass over the dense table per round.
class Refinement {
 public:
  // Edges (tail, label, head), listed with equal labels together.
  std::vector<int32_t> blocks(int32_t n, const std::vector<uint8_t>& accepting, const std::vector<int32_t>& tail,
                              const std::vector<int32_t>& label, const std::vector<int32_t>& head) {
    const int32_t m = static_cast<int32_t>(tail.size());
    marked_.assign(std::max(n, m) + 1, 0);
    touched_.assign(std::max(n, m) + 1, 0);
    count_ = 0;
    Sets states, cords;
    states.init(n);
    for (int32_t s = 0; s < n; ++s) {
      if (accepting[s]) mark(states, s);
    }
    split(states);
    cords.init(m);
    if (m > 0) {  // cords: the edges grouped by symbol (they come listed symbol by symbol)
      cords.count = 0;
      for (int32_t i = 0; i < m; ++i) {
        const int32_t e = cords.elements[i];
        if (i > 0 && label[e] != label[cords.elements[i - 1]]) {
          cords.past[cords.count++] = i;
          cords.first[cords.count] = i;
        }
        cords.set[e] = cords.count;
        cords.location[e] = i;
      }
      cords.past[cords.count++] = m;
    }
    std::vector<int32_t> in_offsets(n + 1, 0), in_edges(m);  // edges by head
    for (int32_t e = 0; e < m; ++e) ++in_offsets[head[e] + 1];
    for (int32_t s = 0; s < n; ++s) in_offsets[s + 1] += in_offsets[s];
    {
      std::vector<int32_t> fill(in_offsets.begin(), in_offsets.end() - 1);
      for (int32_t e = 0; e < m; ++e) in_edges[fill[head[e]]++] = e;
    }
    for (int32_t b = 1, c = 0; c < cords.count;) {
      for (int32_t i = cords.first[c]; i < cords.past[c]; ++i) mark(states, tail[cords.elements[i]]);
      split(states);
      ++c;
      for (; b < states.count; ++b) {
        for (int32_t i = states.first[b]; i < states.past[b]; ++i) {
          const int32_t s = states.elements[i];
          for (int32_t j = in_offsets[s]; j < in_offsets[s + 1]; ++j) mark(cords, in_edges[j]);
        }
        split(cords);
      }
    }
    return states.set;
  }

 private:
  struct Sets {  // a partition of 0..n-1: elements grouped by set, set s = elements[first[s] .. past[s])
    int32_t count = 0;
    std::vector<int32_t> elements, location, set, first, past;
    void init(int32_t n) {
      count = n > 0;
      elements.resize(n), location.resize(n), set.assign(n, 0), first.assign(n + 1, 0), past.assign(n + 1, 0);
      past[0] = n;
      for (int32_t i = 0; i < n; ++i) elements[i] = location[i] = i;
    }
  };
  void mark(Sets& p, int32_t e) {
    const int32_t s = p.set[e], i = p.location[e], j = p.first[s] + marked_[s];
    p.elements[i] = p.elements[j];
    p.location[p.elements[i]] = i;
    p.elements[j] = e;
    p.location[e] = j;
    if (!marked_[s]++) touched_[count_++] = s;
  }
  void split(Sets& p) {  // each touched set into its marked and unmarked part; the smaller one is new
    while (count_ > 0) {
      const int32_t s = touched_[--count_], j = p.first[s] + marked_[s];
      if (j == p.past[s]) {
        marked_[s] = 0;
        continue;
      }
      const int32_t z = p.count;
      if (marked_[s] <= p.past[s] - j) {
        p.first[z] = p.first[s];
        p.past[z] = p.first[s] = j;
      } else {
        p.past[z] = p.past[s];
        p.first[z] = p.past[s] = j;
      }
      for (int32_t i = p.first[z]; i < p.past[z]; ++i) p.set[p.elements[i]] = z;
      marked_[s] = marked_[z] = 0;
      ++p.count;
    }
  }
  std::vector<int32_t> marked_, touched_;
  int32_t count_ = 0;
};

// automata.py's dfa.merge_identical_rows: merge rows with equal flags and successors until stable.
std::vector<int64_t> merge_identical_rows(const std::vector<int64_t>& table, int64_t rows, int64_t symbols,
                                          const std::vector<int64_t>& initial) {
  std::vector<int64_t> ids(rows);
  for (int64_t r = 0; r < rows; ++r) ids[r] = r;
  int64_t count = rows;
  while (true) {
    std::unordered_map<std::vector<int32_t>, int32_t, VectorHash> numbering;
    std::vector<int64_t> merged(rows);
    std::vector<int32_t> signature(symbols + 1);
    for (int64_t r = 0; r < rows; ++r) {
      signature[0] = static_cast<int32_t>(initial[r]);
      for (int64_t k = 0; k < symbols; ++k) signature[k + 1] = static_cast<int32_t>(ids[table[r * symbols + k]]);
      merged[r] = numbering.emplace(signature, static_cast<int32_t>(numbering.size())).first->second;
    }
    const int64_t merged_count = static_cast<int64_t>(numbering.size());
    ids.swap(merged);
    if (merged_count == count) return ids;
    count = merged_count;
  }
}

Dfa Compiler::minimize(const Dfa& d) const {
  const int32_t C = classes_;
  std::vector<int32_t> callees;
  for (const auto& row : d.calls) {
    for (const auto& [rule, t] : row) callees.push_back(rule);
  }
  std::sort(callees.begin(), callees.end());
  callees.erase(std::unique(callees.begin(), callees.end()), callees.end());
  auto callee_column = [&](int32_t rule) {
    return static_cast<int32_t>(std::lower_bound(callees.begin(), callees.end(), rule) - callees.begin());
  };
  std::vector<int64_t> blocks;
  if (d.n <= full_limit_) {
    // Classes whose columns are equal in this DFA are one symbol here (an NFA's classes are often far
    // finer than what its DFA tells apart); edges listed symbol by symbol.
    std::vector<uint64_t> hashes(C, 1469598103934665603ull);
    for (int32_t s = 0; s < d.n; ++s) {
      const int32_t* row = d.next.data() + static_cast<size_t>(s) * C;
      for (int32_t c = 0; c < C; ++c) hashes[c] = (hashes[c] ^ static_cast<uint32_t>(row[c])) * 1099511628211ull;
    }
    std::vector<int32_t> representatives;
    for (int32_t c = 0; c < C; ++c) {
      bool repeated = false;
      for (int32_t r : representatives) {
        if (hashes[r] != hashes[c]) continue;
        bool equal = true;
        for (int32_t s = 0; s < d.n && equal; ++s) {
          equal = d.next[static_cast<size_t>(s) * C + r] == d.next[static_cast<size_t>(s) * C + c];
        }
        if (equal) {
          repeated = true;
          break;
        }
      }
      if (!repeated) representatives.push_back(c);
    }
    std::vector<int32_t> tail, label, head;
    const int32_t symbols = static_cast<int32_t>(representatives.size());
    tail.reserve(static_cast<size_t>(d.n) * 4), label.reserve(tail.capacity()), head.reserve(tail.capacity());
    for (int32_t k = 0; k < symbols; ++k) {
      for (int32_t s = 0; s < d.n; ++s) {
        const int32_t t = d.next[static_cast<size_t>(s) * C + representatives[k]];
        if (t >= 0) tail.push_back(s), label.push_back(k), head.push_back(t);
      }
    }
    std::vector<std::vector<std::pair<int32_t, int32_t>>> by_callee(callees.size());
    for (int32_t s = 0; s < d.n; ++s) {
      for (const auto& [rule, t] : d.calls[s]) by_callee[callee_column(rule)].emplace_back(s, t);
    }
    for (size_t k = 0; k < callees.size(); ++k) {
      for (const auto& [s, t] : by_callee[k]) {
        tail.push_back(s), label.push_back(symbols + static_cast<int32_t>(k)), head.push_back(t);
      }
    }
    const std::vector<int32_t> sets = Refinement().blocks(d.n, d.accepting, tail, label, head);
    blocks.assign(sets.begin(), sets.end());
  } else {
    const int64_t symbols = C + static_cast<int64_t>(callees.size());
    const int64_t rows = d.n + 1;  // a dead sink at row n
    std::vector<int64_t> table(rows * symbols, d.n), initial(rows, 2);
    for (int32_t s = 0; s < d.n; ++s) {
      initial[s] = d.accepting[s];
      for (int32_t c = 0; c < C; ++c) {
        const int32_t t = d.next[static_cast<size_t>(s) * C + c];
        if (t >= 0) table[s * symbols + c] = t;
      }
      for (const auto& [rule, t] : d.calls[s]) table[s * symbols + C + callee_column(rule)] = t;
    }
    blocks = merge_identical_rows(table, rows, symbols, initial);
  }
  const std::vector<uint8_t> live = live_states(d);
  if (!live[0]) return empty_dfa(C);
  // Number the blocks of live states in breadth-first order from the start.
  std::vector<int32_t> new_id(static_cast<size_t>(d.n) + 1, -1);  // block ids are below n + 1
  std::vector<int32_t> representative, order{0};
  std::vector<uint8_t> seen(d.n, 0);
  seen[0] = 1;
  for (size_t i = 0; i < order.size(); ++i) {
    const int32_t s = order[i];
    if (new_id[blocks[s]] < 0) {
      new_id[blocks[s]] = static_cast<int32_t>(representative.size());
      representative.push_back(s);
    }
    auto visit = [&](int32_t t) {
      if (t >= 0 && live[t] && !seen[t]) {
        seen[t] = 1;
        order.push_back(t);
      }
    };
    for (int32_t c = 0; c < C; ++c) visit(d.next[static_cast<size_t>(s) * C + c]);
    for (const auto& [rule, t] : d.calls[s]) visit(t);
  }
  Dfa out;
  out.resize(static_cast<int32_t>(representative.size()), C);
  for (size_t k = 0; k < representative.size(); ++k) {
    const int32_t s = representative[k];
    out.accepting[k] = d.accepting[s];
    for (int32_t c = 0; c < C; ++c) {
      const int32_t t = d.next[static_cast<size_t>(s) * C + c];
      if (t >= 0 && live[t]) out.next[k * C + c] = new_id[blocks[t]];
    }
    for (const auto& [rule, t] : d.calls[s]) {
      if (live[t]) out.calls[k].emplace_back(rule, new_id[blocks[t]]);
    }
  }
  return out;
}

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
  const int32_t R = static_cast<int32_t>(nfa_.rule_entry.size());
  const int32_t C = classes_;
  std::vector<Dfa> dfas(R);
  for (int32_t r = 0; r < R; ++r) {
    Dfa d = minimize(determinize(nfa_.rule_entry[r], nfa_.rule_final[r]));
    dfas[r] = r == 0 ? std::move(d) : without_empty_start(d, C);
  }
  // Rules that match nothing: their call edges go; a rule that loses one is minimized again.
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
    if (pruned) dfas[r] = minimize(dfas[r]);
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
  // Classes whose columns agree in every kept rule are one class of the flat table.
  std::vector<int32_t> merged(C, -1);
  std::unordered_map<std::vector<int32_t>, int32_t, VectorHash> columns;
  std::vector<int32_t> column;
  for (int32_t c = 0; c < C; ++c) {
    column.clear();
    for (int32_t r : out.kept_rules) {
      for (int32_t s = 0; s < dfas[r].n; ++s) column.push_back(dfas[r].next[static_cast<size_t>(s) * C + c]);
    }
    merged[c] = columns.emplace(column, static_cast<int32_t>(columns.size())).first->second;
  }
  out.num_classes = static_cast<int32_t>(columns.size());
  out.byte_class.resize(256);
  for (int b = 0; b < 256; ++b) out.byte_class[b] = merged[byte_class_[b]];
  const int32_t K = out.num_classes;
  out.transitions.assign(static_cast<size_t>(total) * K, -1);
  out.state_rule.resize(total);
  out.accepting.resize(total);
  out.call_offsets.assign(static_cast<size_t>(total) + 1, 0);
  for (int32_t r : out.kept_rules) {
    const Dfa& d = dfas[r];
    for (int32_t s = 0; s < d.n; ++s) {
      const int32_t g = base[r] + s;
      out.state_rule[g] = out_rule[r];
      out.accepting[g] = d.accepting[s];
      for (int32_t c = 0; c < C; ++c) {
        const int32_t t = d.next[static_cast<size_t>(s) * C + c];
        if (t >= 0) out.transitions[static_cast<size_t>(g) * K + merged[c]] = base[r] + t;
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

CompiledTables compile_rule_nfas(const RuleNfa& nfa, int32_t max_dfa_states, int32_t full_minimization_limit) {
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
  return Compiler(nfa, max_dfa_states, full_minimization_limit).run();
}

}  // namespace llmkit::grammar
