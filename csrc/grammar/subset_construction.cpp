#include "grammar/subset_construction.h"

#include <algorithm>
#include <string>
#include <utility>

namespace llmkit::grammar::compiler {

namespace {

bool has_byte(const uint64_t* mask, int b) { return (mask[b >> 6] >> (b & 63)) & 1; }

}  // namespace

SubsetConstruction::SubsetConstruction(const RuleNfa& nfa, int32_t max_dfa_states)
    : nfa_(nfa), max_states_(max_dfa_states), stamp_(nfa.num_states, 0) {
  eps_.build(nfa.eps_src, nfa.num_states);
  bytes_.build(nfa.byte_src, nfa.num_states);
  calls_.build(nfa.call_src, nfa.num_states);
  byte_classes();
  live_states();
}

void SubsetConstruction::live_states() {
  // Backwards from every rule's final state over all edges (rules' NFAs share no edge, so a state that
  // reaches any final state reaches its own rule's).
  const int32_t n = nfa_.num_states;
  std::vector<int32_t> src, dst;
  src.reserve(nfa_.eps_src.size() + nfa_.byte_src.size() + nfa_.call_src.size()), dst.reserve(src.capacity());
  for (const auto* edges : {&nfa_.eps_src, &nfa_.call_src}) src.insert(src.end(), edges->begin(), edges->end());
  for (const auto* edges : {&nfa_.eps_dst, &nfa_.call_dst}) dst.insert(dst.end(), edges->begin(), edges->end());
  for (size_t e = 0; e < nfa_.byte_src.size(); ++e) {
    if (!mask_classes_[nfa_.byte_mask[e]].empty()) {  // an edge on no byte is no path
      src.push_back(nfa_.byte_src[e]);
      dst.push_back(nfa_.byte_dst[e]);
    }
  }
  Csr into;
  into.build(dst, n);
  live_.assign(n, 0);
  std::vector<int32_t> stack(nfa_.rule_final.begin(), nfa_.rule_final.end());
  for (int32_t s : stack) live_[s] = 1;
  while (!stack.empty()) {
    const int32_t t = stack.back();
    stack.pop_back();
    for (int32_t k = into.offsets[t]; k < into.offsets[t + 1]; ++k) {
      const int32_t s = src[into.order[k]];
      if (!live_[s]) {
        live_[s] = 1;
        stack.push_back(s);
      }
    }
  }
}

bool SubsetConstruction::any_live(const std::vector<int32_t>& set) const {
  // A state whose epsilon closure reaches a live state is live itself: the raw targets decide.
  return std::any_of(set.begin(), set.end(), [&](int32_t s) { return live_[s] != 0; });
}

void SubsetConstruction::byte_classes() {
  // The coarsest partition of the bytes that every mask is a union of parts of: each mask splits the
  // classes it cuts, visiting only the bytes on its smaller side (the same split); classes are numbered
  // by their first byte at the end.
  const size_t num_masks = nfa_.masks.size() / 4;
  std::vector<int32_t> label(256, 0), size{256}, inside, fresh;
  std::vector<int32_t> touched;
  inside.reserve(256), fresh.reserve(256);
  const auto for_each_byte = [](const uint64_t* words, bool complement, auto&& visit) {
    for (int w = 0; w < 4; ++w) {
      for (uint64_t x = complement ? ~words[w] : words[w]; x != 0; x &= x - 1) visit(w * 64 + __builtin_ctzll(x));
    }
  };
  for (size_t m = 0; m < num_masks; ++m) {
    const uint64_t* mask = nfa_.masks.data() + 4 * m;
    const int bits = __builtin_popcountll(mask[0]) + __builtin_popcountll(mask[1]) + __builtin_popcountll(mask[2]) +
                     __builtin_popcountll(mask[3]);
    const bool complement = bits > 128;
    inside.assign(size.size(), 0), fresh.assign(size.size(), -1);
    touched.clear();
    for_each_byte(mask, complement, [&](int byte) {
      if (inside[label[byte]]++ == 0) touched.push_back(label[byte]);
    });
    for (int32_t c : touched) {
      if (inside[c] < size[c]) {  // the mask cuts class c: its bytes on this side become a new class
        fresh[c] = static_cast<int32_t>(size.size());
        size[c] -= inside[c];
        size.push_back(inside[c]);
      }
    }
    for_each_byte(mask, complement, [&](int byte) {
      if (fresh[label[byte]] >= 0) label[byte] = fresh[label[byte]];
    });
  }
  std::vector<int32_t> number(size.size(), -1);
  representative_.clear();
  byte_class_.assign(256, 0);
  for (int b = 0; b < 256; ++b) {
    if (number[label[b]] < 0) {
      number[label[b]] = static_cast<int32_t>(representative_.size());
      representative_.push_back(b);
    }
    byte_class_[b] = number[label[b]];
  }
  classes_ = static_cast<int32_t>(representative_.size());
  mask_classes_.assign(num_masks, {});
  for (size_t m = 0; m < num_masks; ++m) {  // a mask is a union of classes: each class's first byte decides
    const uint64_t* mask = nfa_.masks.data() + 4 * m;
    for (int32_t c = 0; c < classes_; ++c) {
      if (has_byte(mask, representative_[size_t(c)])) mask_classes_[m].push_back(c);
    }
  }
}

void SubsetConstruction::closure(std::vector<int32_t>& set) {
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

Dfa SubsetConstruction::determinize(int32_t entry, int32_t final_state) {
  const int32_t C = classes_;
  Dfa d;
  SequenceTable sets;   // closed set -> state (entry k = state k)
  SequenceTable moved;  // raw targets -> an entry of moved_state
  std::vector<int32_t> moved_state;
  auto intern = [&](const std::vector<int32_t>& closed) {
    const uint64_t h = SequenceTable::hash(closed.data(), closed.size());
    const int32_t hit = sets.find(closed, h);
    if (hit >= 0) return hit;
    const int32_t id = d.n;
    if (id >= max_states_) {
      throw GrammarBuildError("the grammar is too large: a rule's DFA passes " + std::to_string(max_states_) +
                              " states");
    }
    d.add_state(C);
    d.accepting[id] = std::binary_search(closed.begin(), closed.end(), final_state);
    sets.insert(closed, h);
    return id;
  };
  std::vector<int32_t> first{entry};
  if (!any_live(first)) return empty_dfa(C);
  closure(first);
  intern(first);
  std::vector<int32_t> closed;
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
    for (const int32_t* member = sets.begin(state); member != sets.end(state); ++member) {
      const int32_t s = *member;
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
            bucket.insert(bucket.end(), sets.begin(row[c]), sets.end(row[c]));
          }
          std::sort(bucket.begin(), bucket.end());
          bucket.erase(std::unique(bucket.begin(), bucket.end()), bucket.end());
          int32_t target;
          const uint64_t h = SequenceTable::hash(bucket.data(), bucket.size());
          const int32_t hit = moved.find(bucket, h);
          if (hit >= 0) {
            target = moved_state[hit];
          } else if (!any_live(bucket)) {
            target = -1;
            moved.insert(bucket, h);
            moved_state.push_back(target);
          } else {
            closed.assign(bucket.begin(), bucket.end());
            closure(closed);
            target = intern(closed);
            row = d.next.data() + static_cast<size_t>(state) * C;  // intern may have grown the table
            moved.insert(bucket, h);
            moved_state.push_back(target);
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
      if (any_live(targets)) {
        closure(targets);
        const int32_t target = intern(targets);
        d.calls[state].emplace_back(calls[i].first, target);
      }
      i = j;
    }
  }
  return d;
}

}  // namespace llmkit::grammar::compiler
