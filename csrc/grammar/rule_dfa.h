// A rule's DFA over byte classes as the native grammar compiler builds it (subset_construction.h) and
// trims it (dfa_trim.h); nfa_compiler.cpp prunes and flattens the rules' DFAs into tables.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace llmkit::grammar::compiler {

// Sorted int sets (or any int sequences) interned in one pool: entry k is the k-th sequence inserted, found
// by content through open addressing. No allocation per lookup or per entry, unlike a hash map keyed by
// std::vector (the subset construction's closed sets and raw target sets).
class SequenceTable {
 public:
  static uint64_t hash(const int32_t* data, size_t size) {
    uint64_t h = 1469598103934665603ull ^ size;
    for (size_t i = 0; i < size; ++i) h = (h ^ static_cast<uint32_t>(data[i])) * 1099511628211ull;
    return h ^ (h >> 29);
  }
  int32_t size() const { return static_cast<int32_t>(hashes_.size()); }
  // The entry holding this sequence, or -1.
  int32_t find(const std::vector<int32_t>& key, uint64_t h) const {
    if (slots_.empty()) return -1;
    for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      const int32_t e = slots_[i];
      if (e < 0) return -1;
      if (hashes_[e] == h && equal(e, key)) return e;
    }
  }
  // Adds a sequence that find() did not find; returns its entry.
  int32_t insert(const std::vector<int32_t>& key, uint64_t h) {
    if (2 * (hashes_.size() + 1) > slots_.size()) grow();
    const int32_t e = size();
    hashes_.push_back(h);
    pool_.insert(pool_.end(), key.begin(), key.end());
    offsets_.push_back(static_cast<int64_t>(pool_.size()));
    place(e);
    return e;
  }
  const int32_t* begin(int32_t e) const { return pool_.data() + offsets_[e]; }  // invalidated by insert
  const int32_t* end(int32_t e) const { return pool_.data() + offsets_[e + 1]; }

 private:
  bool equal(int32_t e, const std::vector<int32_t>& key) const {
    const int64_t n = offsets_[e + 1] - offsets_[e];
    return n == static_cast<int64_t>(key.size()) && std::equal(key.begin(), key.end(), pool_.data() + offsets_[e]);
  }
  void place(int32_t e) {
    size_t i = hashes_[e] & (slots_.size() - 1);
    while (slots_[i] >= 0) i = (i + 1) & (slots_.size() - 1);
    slots_[i] = e;
  }
  void grow() {
    slots_.assign(std::max<size_t>(64, 2 * slots_.size()), -1);
    for (int32_t e = 0; e < size(); ++e) place(e);
  }
  std::vector<int32_t> pool_;
  std::vector<int64_t> offsets_{0};
  std::vector<uint64_t> hashes_;
  std::vector<int32_t> slots_;
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

inline Dfa empty_dfa(int32_t classes) {
  Dfa d;
  d.add_state(classes);
  return d;
}

}  // namespace llmkit::grammar::compiler
