#include "grammar/dfa_minimization.h"

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmkit::grammar::compiler {

namespace {

// Reachable from the start and able to reach an accepting state.
std::vector<uint8_t> live_states(const Dfa& d, int32_t C) {
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

// automata.py's dfa.merge_identical_rows: merge rows with equal flags and successors until stable. Each
// round numbers the rows' signatures (flag, successors' ids) in row order through an open-addressing
// table of representative rows, compared in place: no signature is copied, nothing is allocated per row.
std::vector<int64_t> merge_identical_rows(const std::vector<int64_t>& table, int64_t rows, int64_t symbols,
                                          const std::vector<int64_t>& initial) {
  std::vector<int64_t> ids(rows), merged(rows);
  for (int64_t r = 0; r < rows; ++r) ids[r] = r;
  size_t capacity = 16;
  while (capacity < 2 * static_cast<size_t>(rows)) capacity <<= 1;
  std::vector<int64_t> slots(capacity), representative;  // slot: a new id + 1 (0 = empty)
  std::vector<uint64_t> id_hash;
  representative.reserve(rows), id_hash.reserve(rows);
  int64_t count = rows;
  while (true) {
    std::fill(slots.begin(), slots.end(), 0);
    representative.clear(), id_hash.clear();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t* row = table.data() + r * symbols;
      uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(initial[r]);
      for (int64_t k = 0; k < symbols; ++k) h = (h ^ static_cast<uint64_t>(ids[row[k]])) * 1099511628211ull;
      h ^= h >> 29;
      size_t slot = static_cast<size_t>(h) & (capacity - 1);
      int64_t found = -1;
      for (; slots[slot] != 0; slot = (slot + 1) & (capacity - 1)) {
        const int64_t id = slots[slot] - 1;
        if (id_hash[id] != h) continue;
        const int64_t other = representative[id];
        const int64_t* other_row = table.data() + other * symbols;
        bool equal = initial[other] == initial[r];
        for (int64_t k = 0; k < symbols && equal; ++k) equal = ids[row[k]] == ids[other_row[k]];
        if (equal) {
          found = id;
          break;
        }
      }
      if (found < 0) {
        found = static_cast<int64_t>(representative.size());
        representative.push_back(r), id_hash.push_back(h);
        slots[slot] = found + 1;
      }
      merged[r] = found;
    }
    const int64_t merged_count = static_cast<int64_t>(representative.size());
    ids.swap(merged);
    if (merged_count == count) return ids;
    count = merged_count;
  }
}

}  // namespace

Dfa minimize(const Dfa& d, int32_t C, int32_t full_limit) {
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
  if (d.n <= full_limit) {
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
  const std::vector<uint8_t> live = live_states(d, C);
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

}  // namespace llmkit::grammar::compiler
