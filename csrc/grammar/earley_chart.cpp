#include "grammar/earley_chart.h"

#include <algorithm>

namespace llmkit::grammar {

EarleyChart::EarleyChart(const GrammarTables* grammar) : g_(grammar) {
  set_begin_.push_back(0);
  waiting_begin_.push_back(0);
  items_.push_back(Item{g_->rule_start[0], 0});
  close_last_set(0);
}

void EarleyChart::add(const Item& item, size_t set_begin) {
  for (size_t i = set_begin; i < items_.size(); ++i) {
    if (items_[i] == item) return;
  }
  items_.push_back(item);
}

// Predict on call edges, complete on accepting states; the work list is the set itself.
void EarleyChart::close_last_set(size_t kernel_begin) {
  const int32_t here = position();
  const size_t begin = set_begin_.back();
  for (size_t i = kernel_begin; i < items_.size(); ++i) {
    const Item item = items_[i];
    for (int32_t e = g_->call_offsets[item.state]; e < g_->call_offsets[item.state + 1]; ++e) {
      waiting_.push_back(Waiting{g_->call_rules[e], Item{g_->call_targets[e], item.origin}});
      add(Item{g_->rule_start[g_->call_rules[e]], here}, begin);
    }
    if (g_->accepting[item.state] && item.origin < here) {
      const int32_t rule = g_->state_rule[item.state];
      for (size_t w = waiting_begin_[item.origin]; w < waiting_begin_[item.origin + 1]; ++w) {
        if (waiting_[w].rule == rule) add(waiting_[w].resume, begin);
      }
    }
  }
}

bool EarleyChart::scan(uint8_t byte) {
  const size_t begin = set_begin_.back(), end = items_.size();
  waiting_begin_.push_back(waiting_.size());  // closes the waiting list of the current position
  set_begin_.push_back(end);
  for (size_t i = begin; i < end; ++i) {
    const int32_t next = g_->next(items_[i].state, byte);
    if (next >= 0) add(Item{next, items_[i].origin}, end);
  }
  if (items_.size() == end) {
    set_begin_.pop_back();
    waiting_begin_.pop_back();
    return false;
  }
  close_last_set(end);
  return true;
}

bool EarleyChart::scan_all(const std::string& data) {
  for (size_t k = 0; k < data.size(); ++k) {
    if (!scan(static_cast<uint8_t>(data[k]))) {
      pop(static_cast<int>(k));
      return false;
    }
  }
  return true;
}

void EarleyChart::pop(int count) {
  for (int k = 0; k < count; ++k) {
    items_.resize(set_begin_.back());
    set_begin_.pop_back();
    waiting_.resize(waiting_begin_.back());
    waiting_begin_.pop_back();
  }
}

bool EarleyChart::can_finish() const {
  for (size_t i = set_begin_.back(); i < items_.size(); ++i) {
    const Item& item = items_[i];
    if (item.origin == 0 && g_->is_start_rule(item.state) && g_->accepting[item.state]) return true;
  }
  return false;
}

void EarleyChart::root_states(std::vector<int32_t>& roots) const {
  const int32_t here = position();
  roots.clear();
  for (size_t i = set_begin_.back(); i < items_.size(); ++i) {
    const Item& item = items_[i];
    if (item.origin < here || (here == 0 && g_->is_start_rule(item.state))) {
      if (std::find(roots.begin(), roots.end(), item.state) == roots.end()) roots.push_back(item.state);
    }
  }
}

// Bytes to finish every caller once `rule` (started at `origin`) completes; memo holds (key, cost).
int64_t EarleyChart::cost_above(int32_t origin, int32_t rule, const std::vector<int64_t>& costs,
                                std::vector<std::pair<int64_t, int64_t>>& memo) const {
  if (rule == 0) return 0;
  const int64_t key = static_cast<int64_t>(origin) * g_->num_rules + rule;
  for (const auto& [k, v] : memo) {
    if (k == key) return v;
  }
  memo.emplace_back(key, kUnreachable);  // a cycle through this entry cannot be cheaper
  int64_t best = kUnreachable;
  // The current position's waiting list is still open: it runs to the end of waiting_.
  const size_t end = static_cast<size_t>(origin) + 1 < waiting_begin_.size() ? waiting_begin_[origin + 1] : waiting_.size();
  for (size_t w = waiting_begin_[origin]; w < end; ++w) {
    if (waiting_[w].rule != rule) continue;
    const Item& resume = waiting_[w].resume;
    const int64_t up = cost_above(resume.origin, g_->state_rule[resume.state], costs, memo);
    best = std::min(best, costs[resume.state] + up);
  }
  for (auto& entry : memo) {
    if (entry.first == key) entry.second = best;
  }
  return best;
}

int64_t EarleyChart::finish_cost(const std::vector<int64_t>& costs) const {
  std::vector<std::pair<int64_t, int64_t>> memo;
  int64_t best = kUnreachable;
  for (size_t i = set_begin_.back(); i < items_.size(); ++i) {
    const Item& item = items_[i];
    best = std::min(best, costs[item.state] + cost_above(item.origin, g_->state_rule[item.state], costs, memo));
  }
  return best;
}

void EarleyChart::next_bytes(bool out[256]) const {
  for (int b = 0; b < 256; ++b) out[b] = false;
  for (size_t i = set_begin_.back(); i < items_.size(); ++i) {
    for (int b = 0; b < 256; ++b) {
      if (!out[b] && g_->next(items_[i].state, static_cast<uint8_t>(b)) >= 0) out[b] = true;
    }
  }
}

}  // namespace llmkit::grammar
