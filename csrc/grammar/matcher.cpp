#include "grammar/matcher.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>

#include "cpu/thread_pool.h"

namespace llmkit::grammar {

namespace {

// Relaxations to a fixpoint over byte edges of bytes that have a one-byte token and over call edges
// (a callee costs its shortest string); mirrors budget.finish_costs in the reference. Updating in place,
// last state first (a rule's DFA numbers its states outward from the start, so costs flow back from the
// accepting states in few sweeps), reaches the same least fixpoint as the reference's rounds.
std::vector<int64_t> compute_finish_costs(const GrammarTables& g, const Vocabulary& v) {
  std::vector<uint8_t> usable_class(g.num_classes, 0);
  for (const std::string& data : v.token_bytes) {
    if (data.size() == 1) usable_class[g.byte_class[static_cast<uint8_t>(data[0])]] = 1;
  }
  std::vector<int32_t> edge_offsets(g.num_states + 1, 0), edge_targets;  // usable byte edges, sparse
  for (int s = 0; s < g.num_states; ++s) {
    const size_t row = static_cast<size_t>(s) * g.num_classes;
    for (int c = 0; c < g.num_classes; ++c) {
      if (g.transitions[row + c] >= 0 && usable_class[c]) edge_targets.push_back(g.transitions[row + c]);
    }
    edge_offsets[s + 1] = static_cast<int32_t>(edge_targets.size());
  }
  std::vector<int64_t> cost(g.num_states);
  for (int s = 0; s < g.num_states; ++s) cost[s] = g.accepting[s] ? 0 : kUnreachable;
  for (bool changed = true; changed;) {
    changed = false;
    for (int s = g.num_states - 1; s >= 0; --s) {
      int64_t best = cost[s];
      for (int32_t e = edge_offsets[s]; e < edge_offsets[s + 1]; ++e) best = std::min(best, cost[edge_targets[e]] + 1);
      for (int32_t e = g.call_offsets[s]; e < g.call_offsets[s + 1]; ++e) {
        best = std::min(best, cost[g.rule_start[g.call_rules[e]]] + cost[g.call_targets[e]]);
      }
      best = std::min(best, kUnreachable);
      if (best < cost[s]) {
        cost[s] = best;
        changed = true;
      }
    }
  }
  return cost;
}

constexpr int64_t kBudgetWindow = 64;  // = budget.BUDGET_WINDOW

void set_bit(uint32_t* bits, int32_t token) { bits[token >> 5] |= 1u << (token & 31); }

// Sets of at most this many tokens are listed, and a large set within this many tokens of a base is
// stored as its difference: setting or flipping their bits costs less than copying another bitmask.
int64_t list_limit(int64_t words) { return words / 4; }

// The tokens whose bit is set in a XOR b (b = nullptr: all zero), in increasing order.
std::vector<int32_t> differing_tokens(const std::vector<uint32_t>& a, const std::vector<uint32_t>* b) {
  std::vector<int32_t> tokens;
  for (size_t w = 0; w < a.size(); ++w) {
    for (uint32_t word = a[w] ^ (b ? (*b)[w] : 0u); word != 0; word &= word - 1) {
      tokens.push_back(static_cast<int32_t>(w * 32 + __builtin_ctz(word)));
    }
  }
  return tokens;
}

}  // namespace

const StateMask* StateMask::create(const std::vector<uint32_t>* base, const std::vector<int32_t>& flipped,
                                   std::vector<int32_t> uncertain_subtrees) {
  static_assert(sizeof(StateMask) % alignof(int32_t) == 0, "the flipped tokens follow the header");
  void* memory = ::operator new(sizeof(StateMask) + flipped.size() * sizeof(int32_t), std::align_val_t{64});
  auto* mask = new (memory) StateMask(base, static_cast<int32_t>(flipped.size()), std::move(uncertain_subtrees));
  std::copy(flipped.begin(), flipped.end(), mask->flipped());
  return mask;
}

void StateMask::destroy(const StateMask* mask) {
  if (mask == nullptr) return;
  mask->~StateMask();
  ::operator delete(const_cast<StateMask*>(mask), std::align_val_t{64});
}

int64_t StateMask::bytes() const {
  const size_t allocation = (sizeof(StateMask) + num_flipped_ * sizeof(int32_t) + 63) / 64 * 64;
  return static_cast<int64_t>(allocation + uncertain_subtrees_.size() * sizeof(int32_t));
}

void StateMask::write(uint32_t* bits, int64_t used) const {
  if (base_ != nullptr) {
    std::memcpy(bits, base_->data(), static_cast<size_t>(used) * sizeof(uint32_t));
  } else {
    std::memset(bits, 0, static_cast<size_t>(used) * sizeof(uint32_t));
  }
  const int32_t* tokens = flipped();  // sorted: the tokens past `used` are at the end
  for (int32_t i = 0; i < num_flipped_ && (tokens[i] >> 5) < used; ++i) bits[tokens[i] >> 5] ^= 1u << (tokens[i] & 31);
}

void StateMask::or_into(uint32_t* bits, int64_t used) const {
  const int32_t* tokens = flipped();
  if (base_ == nullptr) {
    for (int32_t i = 0; i < num_flipped_ && (tokens[i] >> 5) < used; ++i) set_bit(bits, tokens[i]);
    return;
  }
  const uint32_t* words = base_->data();
  int64_t w = 0;
  for (int32_t i = 0; i < num_flipped_ && (tokens[i] >> 5) < used;) {  // the flips are sorted
    const int64_t flipped_word = tokens[i] >> 5;
    for (; w < flipped_word; ++w) bits[w] |= words[w];  // the runs between flipped words vectorize
    uint32_t word = words[flipped_word];
    for (; i < num_flipped_ && (tokens[i] >> 5) == flipped_word; ++i) word ^= 1u << (tokens[i] & 31);
    bits[flipped_word] |= word;
    w = flipped_word + 1;
  }
  for (; w < used; ++w) bits[w] |= words[w];
}

GrammarIndex::GrammarIndex(std::shared_ptr<const GrammarTables> grammar, std::shared_ptr<const Vocabulary> vocabulary)
    : grammar_(std::move(grammar)), vocabulary_(std::move(vocabulary)) {
  const size_t n = static_cast<size_t>(grammar_->num_states);
  by_state_ = std::make_unique<std::atomic<const StateMask*>[]>(n);
  for (size_t s = 0; s < n; ++s) by_state_[s].store(nullptr, std::memory_order_relaxed);
}

GrammarIndex::~GrammarIndex() {
  if (classes_ready_.load(std::memory_order_acquire)) {
    for (int c = 0; c < num_classes_; ++c) StateMask::destroy(entries_[c].load(std::memory_order_relaxed));
  }
  for (const auto& [state, own] : own_entries_) StateMask::destroy(own);
  for (const StateMask* mask : retired_) StateMask::destroy(mask);
}

void GrammarIndex::ensure_classes() {
  std::call_once(classes_once_, [&] {
    state_class_ = depth_limited_classes(*grammar_, vocabulary_->max_token_length);
    num_classes_ = state_class_.empty() ? 0 : *std::max_element(state_class_.begin(), state_class_.end()) + 1;
    class_state_.assign(num_classes_, -1);
    for (int32_t s = static_cast<int32_t>(state_class_.size()) - 1; s >= 0; --s) class_state_[state_class_[s]] = s;
    class_members_offsets_.assign(num_classes_ + 1, 0);
    for (int32_t c : state_class_) ++class_members_offsets_[c + 1];
    for (int c = 0; c < num_classes_; ++c) class_members_offsets_[c + 1] += class_members_offsets_[c];
    class_members_.resize(state_class_.size());
    std::vector<int32_t> next(class_members_offsets_.begin(), class_members_offsets_.end() - 1);
    for (int32_t s = 0; s < static_cast<int32_t>(state_class_.size()); ++s) class_members_[next[state_class_[s]]++] = s;
    entries_ = std::make_unique<std::atomic<const StateMask*>[]>(num_classes_);
    for (int c = 0; c < num_classes_; ++c) entries_[c].store(nullptr, std::memory_order_relaxed);
    // The entries made per state so far become their class's entry (equal for every member), so no
    // state is classified twice; under own_mutex_, so that no first visit adds one meanwhile.
    std::lock_guard<std::mutex> lock(own_mutex_);
    for (const auto& [state, own] : own_entries_) {
      const int32_t c = state_class_[state];
      if (entries_[c].load(std::memory_order_relaxed) != nullptr) {
        retired_.push_back(own);
        continue;
      }
      entries_[c].store(own, std::memory_order_relaxed);
      for (int32_t k = class_members_offsets_[c]; k < class_members_offsets_[c + 1]; ++k) {
        by_state_[class_members_[k]].store(own, std::memory_order_release);
      }
    }
    own_entries_.clear();
    classes_ready_.store(true, std::memory_order_release);
  });
}

int GrammarIndex::num_classes() {
  ensure_classes();
  return num_classes_;
}

int GrammarIndex::cache_size() const {
  if (!classes_ready_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(own_mutex_);
    if (!classes_ready_.load(std::memory_order_acquire)) return static_cast<int>(own_entries_.size());
  }
  int count = 0;
  for (int c = 0; c < num_classes_; ++c) count += entries_[c].load(std::memory_order_acquire) != nullptr;
  return count;
}

int64_t GrammarIndex::cache_bytes() const {
  int64_t bytes = 0;
  std::lock_guard<std::mutex> own_lock(own_mutex_);
  if (classes_ready_.load(std::memory_order_acquire)) {
    for (int c = 0; c < num_classes_; ++c) {
      const StateMask* e = entries_[c].load(std::memory_order_acquire);
      if (e != nullptr) bytes += e->bytes();
    }
  } else {
    for (const auto& [state, own] : own_entries_) bytes += own->bytes();
  }
  std::lock_guard<std::mutex> lock(bases_mutex_);
  for (const auto& base : bases_) bytes += static_cast<int64_t>(base->size() * sizeof(uint32_t));
  return bytes;
}

const std::vector<int64_t>& GrammarIndex::finish_costs() const {
  std::call_once(finish_once_, [&] { finish_costs_ = compute_finish_costs(*grammar_, *vocabulary_); });
  return finish_costs_;
}

int GrammarIndex::num_masks() const {
  std::lock_guard<std::mutex> lock(bases_mutex_);
  return static_cast<int>(bases_.size());
}

const StateMask* GrammarIndex::encode(const std::vector<uint32_t>& accepted, std::vector<int32_t> uncertain_subtrees) {
  const int64_t limit = list_limit(static_cast<int64_t>(accepted.size()));
  int64_t count = 0;
  for (uint32_t word : accepted) count += __builtin_popcount(word);
  if (count <= limit) {
    return StateMask::create(nullptr, differing_tokens(accepted, nullptr), std::move(uncertain_subtrees));
  }
  std::lock_guard<std::mutex> lock(bases_mutex_);
  const std::vector<uint32_t>* nearest = nullptr;
  int64_t nearest_distance = limit + 1;
  for (const auto& base : bases_) {
    int64_t distance = 0;
    for (size_t w = 0; w < accepted.size() && distance < nearest_distance; ++w) {
      distance += __builtin_popcount(accepted[w] ^ (*base)[w]);
    }
    if (distance < nearest_distance) {
      nearest = base.get();
      nearest_distance = distance;
    }
  }
  if (nearest == nullptr) {  // no base close enough: this set becomes one
    bases_.push_back(std::make_unique<const std::vector<uint32_t>>(accepted));
    return StateMask::create(bases_.back().get(), {}, std::move(uncertain_subtrees));
  }
  return StateMask::create(nearest, differing_tokens(accepted, nearest), std::move(uncertain_subtrees));
}

const StateMask& GrammarIndex::entry(int32_t state) {
  if (const StateMask* known = by_state_[state].load(std::memory_order_acquire)) return *known;
  if (classes_ready_.load(std::memory_order_acquire)) return class_entry(state);
  return own_entry(state);
}

const StateMask& GrammarIndex::own_entry(int32_t state) {
  {
    std::lock_guard<std::mutex> lock(own_mutex_);
    if (!classes_ready_.load(std::memory_order_acquire) &&
        static_cast<int>(own_entries_.size()) < kFirstVisitsBeforeClasses - 1) {
      if (const StateMask* known = by_state_[state].load(std::memory_order_acquire)) return *known;
      MaskEntry classified = classify_tokens(*grammar_, *vocabulary_, state);
      const StateMask* computed = encode(classified.accepted, std::move(classified.uncertain_subtrees));
      own_entries_.emplace_back(state, computed);
      by_state_[state].store(computed, std::memory_order_release);
      return *computed;
    }
  }
  ensure_classes();  // enough first visits that sharing entries by class pays for the classes
  if (const StateMask* known = by_state_[state].load(std::memory_order_acquire)) return *known;
  return class_entry(state);
}

const StateMask& GrammarIndex::class_entry(int32_t state) {
  const int32_t c = state_class_[state];
  std::atomic<const StateMask*>& slot = entries_[c];
  const StateMask* known = slot.load(std::memory_order_acquire);
  if (known != nullptr) return *known;
  MaskEntry classified = classify_tokens(*grammar_, *vocabulary_, state);
  const StateMask* computed = encode(classified.accepted, std::move(classified.uncertain_subtrees));
  if (!slot.compare_exchange_strong(known, computed, std::memory_order_acq_rel)) {
    // Another thread published this class first (two matchers meeting it at once). A base that `encode`
    // made for the lost copy stays among the bases: masks stay exact, only num_masks counts it.
    StateMask::destroy(computed);
    return *known;
  }
  for (int32_t k = class_members_offsets_[c]; k < class_members_offsets_[c + 1]; ++k) {
    by_state_[class_members_[k]].store(computed, std::memory_order_release);
  }
  return *computed;
}

void GrammarIndex::precompute(int num_threads) {
  ensure_classes();
  std::exception_ptr failure;  // an exception must not leave a pool region: the first one is rethrown
  std::mutex failure_lock;
  cpu::parallel_for_dynamic(num_classes_, num_threads > 0 ? num_threads : 1, [&](int64_t c) {
    try {
      class_entry(class_state_[size_t(c)]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_lock);
      if (!failure) failure = std::current_exception();
    }
  });
  if (failure) std::rethrow_exception(failure);
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

bool Matcher::fill_cached_mask(int32_t* words, int64_t num_words) {
  if (terminated_) return false;
  chart_.root_states(roots_);
  if (roots_.size() != 1) return false;
  const StateMask* e = index_->cached_entry(roots_[0]);
  if (e == nullptr || e->has_uncertain()) return false;
  const int64_t used = std::min<int64_t>(num_words, (index_->vocabulary().vocab_size + 31) / 32);
  auto* bits = reinterpret_cast<uint32_t*>(words);
  std::memset(bits + used, 0, static_cast<size_t>(num_words - used) * sizeof(uint32_t));
  e->write(bits, used);
  allow_stop_tokens(bits, used);
  return true;
}

void Matcher::fill_mask(int32_t* words, int64_t num_words) {
  if (!fill_cached_mask(words, num_words)) fill_computed_mask(words, num_words);
}

void Matcher::fill_computed_mask(int32_t* words, int64_t num_words) {
  const Vocabulary& v = index_->vocabulary();
  const int64_t used = std::min<int64_t>(num_words, (v.vocab_size + 31) / 32);
  auto* bits = reinterpret_cast<uint32_t*>(words);
  std::memset(bits, 0, static_cast<size_t>(num_words) * sizeof(uint32_t));
  if (terminated_) return;
  chart_.root_states(roots_);
  subtrees_.clear();
  for (int32_t state : roots_) {
    const StateMask& e = index_->entry(state);
    e.or_into(bits, used);
    subtrees_.insert(subtrees_.end(), e.uncertain_subtrees().begin(), e.uncertain_subtrees().end());
  }
  if (roots_.size() > 1) {
    std::sort(subtrees_.begin(), subtrees_.end());
    size_t kept = 0;  // drop subtrees inside the previous one
    for (int32_t node : subtrees_) {
      if (kept == 0 || node >= v.subtree_end[subtrees_[kept - 1]]) subtrees_[kept++] = node;
    }
    subtrees_.resize(kept);
  }
  accept_readable(subtrees_, bits);
  allow_stop_tokens(bits, used);
}

void Matcher::allow_stop_tokens(uint32_t* bits, int64_t used) const {
  if (!chart_.can_finish()) return;
  for (int32_t token : stop_token_ids_) {
    if ((token >> 5) < used) set_bit(bits, token);
  }
}

// A depth-first walk of each subtree on the chart itself: a byte the chart cannot read prunes the
// subtree below it. path_ holds the bytes on the chart, so consecutive subtrees share their prefixes.
void Matcher::accept_readable(const std::vector<int32_t>& subtrees, uint32_t* bits) {
  const Vocabulary& v = index_->vocabulary();
  auto retreat_to = [&](size_t depth) {
    if (path_.size() > depth) {
      chart_.pop(static_cast<int>(path_.size() - depth));
      path_.resize(depth);
    }
  };
  path_.clear();
  for (int32_t top : subtrees) {
    // The bytes above `top`: the first top-depth - 1 bytes of any token in its subtree.
    const std::string& first = v.token_bytes[v.node_tokens[v.token_offsets[top]]];
    const size_t above = static_cast<size_t>(v.node_depth[top]) - 1;
    size_t common = 0;
    while (common < std::min(above, path_.size()) && path_[common] == first[common]) ++common;
    retreat_to(common);
    while (path_.size() < above && chart_.scan(static_cast<uint8_t>(first[path_.size()]))) {
      path_.push_back(first[path_.size()]);
    }
    if (path_.size() < above) continue;  // the chart cannot read the bytes above the subtree
    for (int32_t node = top; node < v.subtree_end[top];) {
      retreat_to(static_cast<size_t>(v.node_depth[node]) - 1);
      if (!chart_.scan(v.node_byte[node])) {
        node = v.subtree_end[node];
        continue;
      }
      path_.push_back(static_cast<char>(v.node_byte[node]));
      for (int32_t k = v.token_offsets[node]; k < v.token_offsets[node + 1]; ++k) set_bit(bits, v.node_tokens[k]);
      ++node;
    }
  }
  retreat_to(0);
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
