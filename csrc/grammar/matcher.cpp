#include "grammar/matcher.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace llmkit::grammar {

namespace {

// Bellman-Ford relaxations to a fixpoint over byte edges of bytes that have a one-byte token and over
// call edges (a callee costs its shortest string); mirrors budget.finish_costs in the reference.
std::vector<int64_t> compute_finish_costs(const GrammarTables& g, const Vocabulary& v) {
  std::vector<uint8_t> usable_class(g.num_classes, 0);
  for (const std::string& data : v.token_bytes) {
    if (data.size() == 1) usable_class[g.byte_class[static_cast<uint8_t>(data[0])]] = 1;
  }
  std::vector<int64_t> cost(g.num_states);
  for (int s = 0; s < g.num_states; ++s) cost[s] = g.accepting[s] ? 0 : kUnreachable;
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<int64_t> updated(cost);
    for (int s = 0; s < g.num_states; ++s) {
      const size_t row = static_cast<size_t>(s) * g.num_classes;
      for (int c = 0; c < g.num_classes; ++c) {
        const int32_t t = g.transitions[row + c];
        if (t >= 0 && usable_class[c]) updated[s] = std::min(updated[s], cost[t] + 1);
      }
      for (int32_t e = g.call_offsets[s]; e < g.call_offsets[s + 1]; ++e) {
        updated[s] = std::min(updated[s], cost[g.rule_start[g.call_rules[e]]] + cost[g.call_targets[e]]);
      }
      updated[s] = std::min(updated[s], kUnreachable);
    }
    if (updated != cost) {
      cost.swap(updated);
      changed = true;
    }
  }
  return cost;
}

constexpr int64_t kBudgetWindow = 64;  // = budget.BUDGET_WINDOW

}  // namespace

GrammarIndex::GrammarIndex(std::shared_ptr<const GrammarTables> grammar, std::shared_ptr<const Vocabulary> vocabulary)
    : grammar_(std::move(grammar)), vocabulary_(std::move(vocabulary)) {
  state_class_ = depth_limited_classes(*grammar_, vocabulary_->max_token_length);
  num_classes_ = state_class_.empty() ? 0 : *std::max_element(state_class_.begin(), state_class_.end()) + 1;
  finish_costs_ = compute_finish_costs(*grammar_, *vocabulary_);
}

int GrammarIndex::cache_size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(cache_.size());
}

std::shared_ptr<const MaskEntry> GrammarIndex::entry(int32_t state) {
  const int32_t key = state_class_[state];
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto hit = cache_.find(key);
    if (hit != cache_.end()) return hit->second;
  }
  auto computed = std::make_shared<const MaskEntry>(classify_tokens(*grammar_, *vocabulary_, state));
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.emplace(key, std::move(computed)).first->second;
}

Matcher::Matcher(std::shared_ptr<GrammarIndex> index, std::vector<int32_t> stop_token_ids)
    : index_(std::move(index)), chart_(&index_->grammar()), stop_token_ids_(std::move(stop_token_ids)) {
  for (int32_t id : stop_token_ids_) {
    if (id < 0 || id >= index_->vocabulary().vocab_size) {
      throw std::invalid_argument("stop token id " + std::to_string(id) + " is outside the vocabulary of " +
                                  std::to_string(index_->vocabulary().vocab_size));
    }
  }
}

bool Matcher::accept_token(int32_t token) {
  const Vocabulary& v = index_->vocabulary();
  if (terminated_ || token < 0 || token >= v.vocab_size) return false;
  if (std::find(stop_token_ids_.begin(), stop_token_ids_.end(), token) != stop_token_ids_.end()) {
    if (!chart_.can_finish()) return false;
    terminated_ = true;
    history_.push_back(-1);
    return true;
  }
  const std::string& data = v.token_bytes[token];
  if (data.empty() || !chart_.scan_all(data)) return false;
  history_.push_back(static_cast<int32_t>(data.size()));
  return true;
}

bool Matcher::accept_bytes(const std::string& data) {
  if (terminated_ || data.empty() || !chart_.scan_all(data)) return false;
  history_.push_back(static_cast<int32_t>(data.size()));
  return true;
}

void Matcher::rollback(int count) {
  if (count < 0 || count > num_accepted_tokens()) {
    throw std::invalid_argument("cannot roll back " + std::to_string(count) + " tokens: " +
                                std::to_string(num_accepted_tokens()) + " were accepted");
  }
  for (int k = 0; k < count; ++k) {
    const int32_t size = history_.back();
    history_.pop_back();
    if (size < 0) {
      terminated_ = false;
    } else {
      chart_.pop(size);
    }
  }
}

void Matcher::fill_mask(int32_t* words, int64_t num_words) {
  std::memset(words, 0, static_cast<size_t>(num_words) * sizeof(int32_t));
  if (terminated_) return;
  const Vocabulary& v = index_->vocabulary();
  const int64_t used = std::min<int64_t>(num_words, (v.vocab_size + 31) / 32);
  auto* bits = reinterpret_cast<uint32_t*>(words);
  std::vector<int32_t> candidates;
  for (int32_t state : chart_.root_states()) {
    std::shared_ptr<const MaskEntry> e = index_->entry(state);
    for (int64_t w = 0; w < used; ++w) bits[w] |= e->accepted[w];
    candidates.insert(candidates.end(), e->uncertain.begin(), e->uncertain.end());
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (int32_t token : candidates) {
    if ((token >> 5) >= used || ((bits[token >> 5] >> (token & 31)) & 1u)) continue;
    const std::string& data = v.token_bytes[token];
    if (chart_.scan_all(data)) {
      chart_.pop(static_cast<int>(data.size()));
      bits[token >> 5] |= 1u << (token & 31);
    }
  }
  if (chart_.can_finish()) {
    for (int32_t token : stop_token_ids_) {
      if ((token >> 5) < used) bits[token >> 5] |= 1u << (token & 31);
    }
  }
}

void Matcher::restrict_mask(int32_t* words, int64_t num_words, int64_t tokens_left) {
  if (terminated_ || finish_cost() + kBudgetWindow < tokens_left) return;
  const Vocabulary& v = index_->vocabulary();
  auto* bits = reinterpret_cast<uint32_t*>(words);
  const int64_t used = std::min<int64_t>(num_words, (v.vocab_size + 31) / 32);
  const std::vector<uint32_t> unrestricted(bits, bits + used);
  for (int64_t w = 0; w < used; ++w) {
    for (uint32_t word = bits[w]; word != 0; word &= word - 1) {
      const int32_t token = static_cast<int32_t>(w * 32 + __builtin_ctz(word));
      if (token >= v.vocab_size ||
          std::find(stop_token_ids_.begin(), stop_token_ids_.end(), token) != stop_token_ids_.end()) {
        continue;
      }
      const std::string& data = v.token_bytes[token];
      if (!chart_.scan_all(data)) continue;
      const int64_t cost = chart_.finish_cost(index_->finish_costs());
      chart_.pop(static_cast<int>(data.size()));
      if (cost + 1 > tokens_left - 1) bits[w] &= ~(1u << (token & 31));
    }
  }
  // No token finishes in time (max_tokens below the grammar's shortest completion): keep the grammar's
  // mask, so the output is cut by the length limit instead of an empty row leaving the sampler nothing.
  if (std::all_of(bits, bits + used, [](uint32_t word) { return word == 0; })) {
    std::copy(unrestricted.begin(), unrestricted.end(), bits);
  }
}

std::string Matcher::forced_bytes(int limit) {
  std::string forced;
  bool options[256];
  while (static_cast<int>(forced.size()) < limit && !terminated_ && !chart_.can_finish()) {
    chart_.next_bytes(options);
    int only = -1, count = 0;
    for (int b = 0; b < 256; ++b) {
      if (options[b]) {
        only = b;
        ++count;
      }
    }
    if (count != 1) break;
    chart_.scan(static_cast<uint8_t>(only));
    forced.push_back(static_cast<char>(only));
  }
  chart_.pop(static_cast<int>(forced.size()));
  return forced;
}

}  // namespace llmkit::grammar
