// The Earley chart over rule DFAs: one item set per byte position; rollback truncates it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grammar/grammar_tables.h"

namespace llmkit::grammar {

struct Item {
  int32_t state;
  int32_t origin;
  bool operator==(const Item& o) const { return state == o.state && origin == o.origin; }
};

struct Waiting {
  int32_t rule;  // the callee this caller waits for
  Item resume;   // the caller's return state and origin
};

class EarleyChart {
 public:
  explicit EarleyChart(const GrammarTables* grammar);

  int position() const { return static_cast<int>(set_begin_.size()) - 1; }
  bool scan(uint8_t byte);                // false (chart unchanged) when no item reads the byte
  bool scan_all(const std::string& data);  // all bytes, or none
  void pop(int count);                    // drop the last `count` positions
  bool can_finish() const;
  void root_states(std::vector<int32_t>& out) const;  // items not predicted here: where token masks start
  void next_bytes(bool out[256]) const;
  // The fewest bytes that complete the start rule from here, given each state's cost to its rule's end.
  int64_t finish_cost(const std::vector<int64_t>& costs) const;

 private:
  void close_last_set(size_t kernel_begin);
  void add(const Item& item, size_t set_begin);
  int64_t cost_above(int32_t origin, int32_t rule, const std::vector<int64_t>& costs,
                     std::vector<std::pair<int64_t, int64_t>>& memo) const;

  const GrammarTables* g_;
  std::vector<Item> items_;
  std::vector<size_t> set_begin_;
  std::vector<Waiting> waiting_;
  std::vector<size_t> waiting_begin_;
};

}  // namespace llmkit::grammar
