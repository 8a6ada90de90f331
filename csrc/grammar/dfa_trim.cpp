#include "grammar/dfa_trim.h"

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

}  // namespace

Dfa trim(const Dfa& d, int32_t C) {
  const std::vector<uint8_t> live = live_states(d, C);
  if (!live[0]) return empty_dfa(C);
  std::vector<int32_t> new_id(d.n, -1), order{0};
  new_id[0] = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const int32_t s = order[i];
    auto visit = [&](int32_t t) {
      if (t >= 0 && live[t] && new_id[t] < 0) {
        new_id[t] = static_cast<int32_t>(order.size());
        order.push_back(t);
      }
    };
    const int32_t* row = d.next.data() + static_cast<size_t>(s) * C;
    for (int32_t c = 0; c < C; ++c) visit(row[c]);
    for (const auto& [rule, t] : d.calls[s]) visit(t);
  }
  Dfa out;
  out.resize(static_cast<int32_t>(order.size()), C);
  for (size_t k = 0; k < order.size(); ++k) {
    const int32_t s = order[k];
    out.accepting[k] = d.accepting[s];
    const int32_t* row = d.next.data() + static_cast<size_t>(s) * C;
    int32_t* out_row = out.next.data() + k * C;
    for (int32_t c = 0; c < C; ++c) {
      if (row[c] >= 0) out_row[c] = new_id[row[c]];  // -1 for a dead target
    }
    for (const auto& [rule, t] : d.calls[s]) {
      if (new_id[t] >= 0) out.calls[k].emplace_back(rule, new_id[t]);
    }
  }
  return out;
}

}  // namespace llmkit::grammar::compiler
