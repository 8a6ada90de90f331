// GrammarIndex (a grammar over one vocabulary, with the shared token-mask cache) and Matcher (one
// generation's Earley chart, token history and mask filling).
#pragma once

#include <cstdint>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "grammar/earley_chart.h"
#include "grammar/grammar_tables.h"
#include "grammar/token_walk.h"
#include "grammar/vocabulary.h"

namespace llmkit::grammar {

// The cached token classification of a state class, in one allocation that a cached fill reads from
// its start: a base bitmask shared by many classes (or none) and, right after the header, the tokens
// whose bit differs from it. A small set has no base and lists its tokens; a large one names the
// index's nearest base, so the JSON string bodies of one grammar, which differ only in the tokens
// that close the string into different continuations, share one bitmask that stays in cache.
class StateMask {
 public:
  // `flipped`: sorted, distinct token ids, at most list_limit of them.
  static const StateMask* create(const std::vector<uint32_t>* base, const std::vector<int32_t>& flipped,
                                 std::vector<int32_t> uncertain_subtrees);
  static void destroy(const StateMask* mask);

  bool has_uncertain() const { return !uncertain_subtrees_.empty(); }
  const std::vector<int32_t>& uncertain_subtrees() const { return uncertain_subtrees_; }  // as in MaskEntry
  int64_t bytes() const;  // this allocation, rounded to its 64-byte alignment (the shared base not counted)
  void write(uint32_t* bits, int64_t used) const;    // bits = the accepted set
  void or_into(uint32_t* bits, int64_t used) const;  // bits |= the accepted set

 private:
  StateMask(const std::vector<uint32_t>* base, int32_t num_flipped, std::vector<int32_t> uncertain_subtrees)
      : base_(base), num_flipped_(num_flipped), uncertain_subtrees_(std::move(uncertain_subtrees)) {}
  int32_t* flipped() { return reinterpret_cast<int32_t*>(this + 1); }
  const int32_t* flipped() const { return reinterpret_cast<const int32_t*>(this + 1); }

  const std::vector<uint32_t>* base_;  // [ceil(vocab / 32)] owned by the index, or nullptr (all zero)
  int32_t num_flipped_;
  std::vector<int32_t> uncertain_subtrees_;
};

class GrammarIndex {
 public:
  GrammarIndex(std::shared_ptr<const GrammarTables> grammar, std::shared_ptr<const Vocabulary> vocabulary);
  ~GrammarIndex();
  GrammarIndex(const GrammarIndex&) = delete;
  GrammarIndex& operator=(const GrammarIndex&) = delete;

  const GrammarTables& grammar() const { return *grammar_; }
  const Vocabulary& vocabulary() const { return *vocabulary_; }
  int num_classes();       // computes the state classes if no one has yet
  bool has_classes() const { return classes_ready_.load(std::memory_order_acquire); }
  int cache_size() const;  // entries computed: per state class, or per state before the classes exist
  int64_t cache_bytes() const;  // memory held by the computed entries
  int num_masks() const;        // base bitmasks
  // The classification of the tokens read from `state`: computed on first use, then shared by every
  // matcher (thread-safe; a lookup takes no lock). The first few states visited are classified on their
  // own, so that a new grammar's first mask does not wait for the state classes; the classes are
  // computed at the kFirstVisitsBeforeClasses-th first visit (or by precompute) and adopt those entries.
  const StateMask& entry(int32_t state);
  static constexpr int kFirstVisitsBeforeClasses = 4;
  // The entry if it is computed already, else nullptr.
  const StateMask* cached_entry(int32_t state) const { return by_state_[state].load(std::memory_order_acquire); }
  // Computes the entries of all state classes now, on up to num_threads threads.
  void precompute(int num_threads);
  // Fewest bytes (each with a one-byte token) from each state to its rule's end; computed on first use.
  const std::vector<int64_t>& finish_costs() const;

 private:
  void ensure_classes();  // computes the state classes once and adopts the entries made before them
  const StateMask& class_entry(int32_t state);
  const StateMask& own_entry(int32_t state);  // before the classes exist

  std::shared_ptr<const GrammarTables> grammar_;
  std::shared_ptr<const Vocabulary> vocabulary_;
  // The state classes, set once by ensure_classes; read only after classes_ready_ is seen true.
  std::once_flag classes_once_;
  std::atomic<bool> classes_ready_{false};
  std::vector<int32_t> state_class_;
  std::vector<int32_t> class_state_;  // one state of each class
  std::vector<int32_t> class_members_offsets_, class_members_;  // the states of each class (CSR)
  int num_classes_ = 0;
  std::unique_ptr<std::atomic<const StateMask*>[]> entries_;  // [num_classes], owned; null until computed
  // Entries computed per state before the classes existed (owned until adopted as their class's entry),
  // and the ones a class had already when adopted (kept: a matcher may still read them).
  mutable std::mutex own_mutex_;
  std::vector<std::pair<int32_t, const StateMask*>> own_entries_;
  std::vector<const StateMask*> retired_;
  mutable std::once_flag finish_once_;
  mutable std::vector<int64_t> finish_costs_;
  // [num_states]: each state's entry once published, so a cached fill follows one pointer.
  std::unique_ptr<std::atomic<const StateMask*>[]> by_state_;
  // The base bitmasks of the large accepted sets: one per group of sets within list_limit tokens of it.
  mutable std::mutex bases_mutex_;
  std::vector<std::unique_ptr<const std::vector<uint32_t>>> bases_;
  const StateMask* encode(const std::vector<uint32_t>& accepted, std::vector<int32_t> uncertain_subtrees);
};

class Matcher {
 public:
  Matcher(std::shared_ptr<GrammarIndex> index, std::vector<int32_t> stop_token_ids);

  bool accept_token(int32_t token);
  bool accept_bytes(const std::string& data);
  void rollback(int count);
  void reset() { rollback(num_accepted_tokens()); }
  bool is_terminated() const { return terminated_; }
  bool can_terminate() const { return !terminated_ && chart_.can_finish(); }
  int num_accepted_tokens() const { return static_cast<int>(history_.size()); }
  int vocab_size() const { return index_->vocabulary().vocab_size; }
  // Write the allowed tokens as bits into words[0 .. num_words); words past the vocabulary stay 0.
  // = fill_cached_mask, or else fill_computed_mask.
  void fill_mask(int32_t* words, int64_t num_words);
  // fill_mask when the mask is one cached entry with no tokens to check at run time (most steps): cheap
  // enough to run while holding the GIL. Returns false, having written nothing, when there is real work.
  bool fill_cached_mask(int32_t* words, int64_t num_words);
  // fill_mask the general way: any number of root states, first visits, uncertain tokens checked.
  void fill_computed_mask(int32_t* words, int64_t num_words);
  std::string forced_bytes(int limit);
  int64_t finish_cost() const { return terminated_ ? 0 : chart_.finish_cost(index_->finish_costs()); }
  // Near the end of the budget: clear the tokens after which the grammar could not finish, the stop
  // token included, within tokens_left tokens (this one counted).
  void restrict_mask(int32_t* words, int64_t num_words, int64_t tokens_left);

 private:
  // Sets the bits of the tokens in the given trie subtrees (preorder, disjoint) that the chart reads whole.
  void accept_readable(const std::vector<int32_t>& subtrees, uint32_t* bits);
  void allow_stop_tokens(uint32_t* bits, int64_t used) const;  // when the grammar can end here

  std::shared_ptr<GrammarIndex> index_;
  EarleyChart chart_;
  std::vector<int32_t> stop_token_ids_;
  std::vector<int32_t> history_;  // bytes per accepted token, -1 for a stop token
  bool terminated_ = false;
  // Scratch space of fill_mask, kept to avoid allocations per token.
  std::vector<int32_t> roots_;
  std::vector<int32_t> subtrees_;
  std::string path_;
};

}  // namespace llmkit::grammar
