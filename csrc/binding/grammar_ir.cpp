// The Thompson construction of automata.rule_nfas over the IR's Python objects (see grammar_ir.h).
#include "binding/grammar_ir.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "binding/ir_fragments.h"

namespace py = pybind11;

namespace llmkit {

namespace {

using grammar::GrammarBuildError;
using grammar::RuleNfa;
using ir::Fragment;
using ir::fragment_from_python;
using ir::kMinFragmentStates;
using ir::Known;
using ir::known_pieces;
using ir::KnownPieces;
using ir::Mask256;
using ir::Mask256Hash;
using ir::mask_of;
using ir::remember;

constexpr int kMaxDepth = 2000;  // nesting of expressions (the C stack, not a language limit)

PyObject* interned(const char* name) {
  PyObject* s = PyUnicode_InternFromString(name);
  if (s == nullptr) throw py::error_already_set();
  return s;  // immortal for our purposes: kept for the process
}

py::object attr(PyObject* obj, const char* name, PyObject*& cache) {
  if (cache == nullptr) cache = interned(name);
  PyObject* value = PyObject_GetAttr(obj, cache);
  if (value == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(value);
}

PyObject* s_items = nullptr;
PyObject* s_item = nullptr;
PyObject* s_mask = nullptr;
PyObject* s_min = nullptr;
PyObject* s_max = nullptr;
PyObject* s_rule = nullptr;
PyObject* s_words = nullptr;
PyObject* s_word = nullptr;

std::string repr(const std::string& name) { return py::repr(py::str(name)).cast<std::string>(); }


enum Kind { kBytes, kSeq, kAlt, kRepeat, kRef, kExclude, kAvoid, kKinds };

struct Mark {
  int32_t states;
  size_t eps, bytes, calls;
};

class IrNfaBuilder {
 public:
  explicit IrNfaBuilder(const IrNfaInputs& in) : in_(in), compilation_(++known_pieces().compilations) {
    if (in.types.size() != kKinds) throw py::value_error("types must be (Bytes, Seq, Alt, Repeat, Ref, Exclude, Avoid)");
    for (int k = 0; k < kKinds; ++k) types_[k] = in.types[static_cast<size_t>(k)].ptr();
  }

  RuleNfa build(std::vector<std::string>& names) {
    plan();
    rule_id(in_.start_rule);
    std::vector<int32_t> pending{0};
    while (!pending.empty()) {
      const int32_t id = pending.back();
      pending.pop_back();
      if (bounds_[static_cast<size_t>(id)].first >= 0) continue;
      base_ = nfa_.num_states;
      const size_t calls_before = nfa_.call_rule.size();
      const int32_t start = new_state();
      const int32_t final_state = emit(rule_expr(rule_names_[static_cast<size_t>(id)]), start);
      bounds_[static_cast<size_t>(id)] = {start, final_state};
      for (size_t k = calls_before; k < nfa_.call_rule.size(); ++k) pending.push_back(nfa_.call_rule[k]);
    }
    std::vector<int32_t> order(rule_names_.size());  // output position -> discovery id
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin() + 1, order.end(),
              [&](int32_t a, int32_t b) { return rule_names_[size_t(a)] < rule_names_[size_t(b)]; });
    std::vector<int32_t> position(order.size());
    names.clear();
    for (size_t k = 0; k < order.size(); ++k) {
      position[size_t(order[k])] = static_cast<int32_t>(k);
      names.push_back(rule_names_[size_t(order[k])]);
      nfa_.rule_entry.push_back(bounds_[size_t(order[k])].first);
      nfa_.rule_final.push_back(bounds_[size_t(order[k])].second);
    }
    for (int32_t& rule : nfa_.call_rule) rule = position[size_t(rule)];
    nfa_.masks.reserve(masks_.size() * 4);
    for (const Mask256& m : masks_) nfa_.masks.insert(nfa_.masks.end(), m.w, m.w + 4);
    return std::move(nfa_);
  }

 private:
  Kind kind_of(PyObject* expr) const {
    PyTypeObject* type = Py_TYPE(expr);
    for (int k = 0; k < kKinds; ++k) {
      if (reinterpret_cast<PyObject*>(type) == types_[k]) return static_cast<Kind>(k);
    }
    for (int k = 0; k < kKinds; ++k) {  // a subclass
      const int is = PyObject_IsInstance(expr, types_[k]);
      if (is < 0) throw py::error_already_set();
      if (is) return static_cast<Kind>(k);
    }
    throw GrammarBuildError("unknown grammar expression " + py::repr(expr).cast<std::string>());
  }

  PyObject* rule_expr(const std::string& name) const {
    auto it = plan_index_.find(name);
    if (it == plan_index_.end()) throw GrammarBuildError("the grammar refers to undefined rule " + repr(name));
    return plan_exprs_[size_t(it->second)];  // borrowed: the rules dict (or the start Ref) holds it
  }

  // --- the plan (automata.nfa_plan) ------------------------------------------------------------------
  void plan() {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    bool named_start = false;  // a rule of the grammar's own has the start rule's name
    while (PyDict_Next(in_.rules.ptr(), &pos, &key, &value)) {
      if (!PyUnicode_Check(key)) throw py::type_error("rule names must be str");
      const std::string name = py::reinterpret_borrow<py::str>(key);
      if (name == in_.start_rule) {  // the start rule below takes its name, as in automata.nfa_plan
        named_start = true;
        continue;
      }
      plan_index_.emplace(name, static_cast<int32_t>(plan_names_.size()));
      plan_names_.push_back(name), plan_exprs_.push_back(value);
    }
    const int32_t start = static_cast<int32_t>(plan_names_.size());
    plan_index_.emplace(in_.start_rule, start);
    plan_names_.push_back(in_.start_rule), plan_exprs_.push_back(in_.start_expr.ptr());
    const size_t n = plan_names_.size();
    // Each rule's references; an undefined one refused as Grammar.check_references does (the rules, then the root).
    std::vector<std::vector<int32_t>> graph(n);
    std::vector<std::string> refs;
    for (size_t k = 0; k < n; ++k) {
      refs.clear(), walked_.clear();
      collect_refs(plan_exprs_[k], kind_of(plan_exprs_[k]), refs);
      for (const std::string& ref : refs) {
        auto it = plan_index_.find(ref);
        if (it == plan_index_.end() || (it->second == start && !named_start)) {  // the grammar's own rules decide
          if (int32_t(k) == start) throw GrammarBuildError("the grammar has no root rule " + repr(ref));
          throw GrammarBuildError("rule " + repr(plan_names_[k]) + " refers to undefined rule " + repr(ref));
        }
        graph[k].push_back(it->second);
      }
    }
    std::vector<int32_t> reachable{start};  // the rules the start rule reaches: the analyses skip the others
    std::vector<char> seen(n, 0);
    seen[size_t(start)] = 1;
    for (size_t k = 0; k < reachable.size(); ++k) {
      for (int32_t next : graph[size_t(reachable[k])]) {
        if (!seen[size_t(next)]) seen[size_t(next)] = 1, reachable.push_back(next);
      }
    }
    for (int32_t r : recursive_rules(graph, reachable)) called_.insert(plan_names_[size_t(r)]);
    for (const py::handle name : in_.asked_calls) called_.insert(name.cast<std::string>());
    nullable_.assign(n, 0);  // least fixpoint over the reachable rules (ir.nullable_rules)
    for (bool changed = true; changed;) {
      changed = false;
      round_memo_.clear();  // what names a rule may change between rounds
      for (int32_t r : reachable) {
        if (!nullable_[size_t(r)] && nullable(plan_exprs_[size_t(r)], kind_of(plan_exprs_[size_t(r)]))) {
          nullable_[size_t(r)] = 1, changed = true;
        }
      }
    }
  }

  // The names of the rules `expr` refers to, appended to `out`; whether there are any (remembered for emit).
  bool collect_refs(PyObject* expr, Kind kind, std::vector<std::string>& out) {
    if (kind == kBytes) return false;
    if (kind == kRef) {
      out.push_back(attr(expr, "rule", s_rule).cast<std::string>());
      return true;
    }
    auto hit = refs_.find(expr);
    if (hit != refs_.end() && !hit->second) return false;
    if (known_pieces().entries.count(expr)) return false;  // a recorded piece names no rule
    if (!walked_.insert(expr).second) return hit != refs_.end() && hit->second;  // its names are in `out` already
    if (++depth_ > kMaxDepth) throw GrammarBuildError(too_deep());
    bool found = false;
    if (kind == kSeq || kind == kAlt) {
      py::tuple items = attr(expr, "items", s_items);
      for (const py::handle item : items) found |= collect_refs(item.ptr(), kind_of(item.ptr()), out);
    } else {
      py::object item = attr(expr, "item", s_item);
      found = collect_refs(item.ptr(), kind_of(item.ptr()), out);
    }
    --depth_;
    refs_[expr] = found;
    return found;
  }

  // Rules on a reference cycle among `reachable` (Tarjan's strongly connected components, iteratively).
  static std::vector<int32_t> recursive_rules(const std::vector<std::vector<int32_t>>& graph,
                                              const std::vector<int32_t>& reachable) {
    const size_t n = graph.size();
    std::vector<int32_t> index(n, -1), low(n, 0), stack, result;
    std::vector<char> on_stack(n, 0);
    std::vector<std::pair<int32_t, size_t>> work;
    int32_t counter = 0;
    for (int32_t root : reachable) {
      if (index[size_t(root)] >= 0) continue;
      work.emplace_back(root, 0);
      while (!work.empty()) {
        const int32_t node = work.back().first;
        const size_t child = work.back().second;
        if (child == 0) {
          index[size_t(node)] = low[size_t(node)] = counter++;
          stack.push_back(node), on_stack[size_t(node)] = 1;
        }
        if (child < graph[size_t(node)].size()) {
          work.back().second = child + 1;
          const int32_t next = graph[size_t(node)][child];
          if (index[size_t(next)] < 0) {
            work.emplace_back(next, 0);
          } else if (on_stack[size_t(next)]) {
            low[size_t(node)] = std::min(low[size_t(node)], index[size_t(next)]);
          }
          continue;
        }
        if (low[size_t(node)] == index[size_t(node)]) {
          const auto& edges = graph[size_t(node)];
          size_t first = stack.size();
          while (stack[--first] != node) {
          }
          const bool cycle = stack.size() - first > 1 || std::find(edges.begin(), edges.end(), node) != edges.end();
          for (size_t k = first; k < stack.size(); ++k) {
            on_stack[size_t(stack[k])] = 0;
            if (cycle) result.push_back(stack[k]);
          }
          stack.resize(first);
        }
        work.pop_back();
        if (!work.empty()) {
          const int32_t parent = work.back().first;
          low[size_t(parent)] = std::min(low[size_t(parent)], low[size_t(node)]);
        }
      }
    }
    return result;
  }

  // Whether `expr` matches the empty string, given the rules found nullable so far (ir.nullable_rules).
  bool nullable(PyObject* expr, Kind kind) {
    if (kind == kBytes) return false;
    if (kind == kRef) return nullable_[size_t(plan_index_.at(attr(expr, "rule", s_rule).cast<std::string>()))] != 0;
    auto hit = refs_.find(expr);
    const bool fixed = hit != refs_.end() ? !hit->second : known_pieces().entries.count(expr) > 0;
    auto& memo = fixed ? nullable_memo_ : round_memo_;  // a rule-free expression's answer never changes
    auto known = memo.find(expr);
    if (known != memo.end()) return known->second;
    bool result;
    if (kind == kSeq || kind == kAlt) {
      py::tuple items = attr(expr, "items", s_items);
      result = kind == kSeq;
      for (const py::handle item : items) {
        if (nullable(item.ptr(), kind_of(item.ptr())) != (kind == kSeq)) {
          result = kind != kSeq;
          break;
        }
      }
    } else {
      py::object item = attr(expr, "item", s_item);
      if (kind == kRepeat && attr(expr, "min_count", s_min).cast<int64_t>() == 0) {
        result = true;
      } else {
        result = nullable(item.ptr(), kind_of(item.ptr()));
        if (result && kind == kExclude) {
          const int has_empty = PySequence_Contains(attr(expr, "words", s_words).ptr(), py::bytes("").ptr());
          if (has_empty < 0) throw py::error_already_set();
          result = has_empty == 0;
        } else if (result && kind == kAvoid) {
          result = py::len(attr(expr, "word", s_word)) != 0;
        }
      }
    }
    memo.emplace(expr, result);
    return result;
  }

  int32_t rule_id(const std::string& name) {
    auto [it, added] = rule_ids_.emplace(name, static_cast<int32_t>(rule_names_.size()));
    if (added) {
      rule_names_.push_back(name);
      bounds_.emplace_back(-1, -1);
    }
    return it->second;
  }

  // --- the NFA ---------------------------------------------------------------------------------------
  void check_room(int64_t count) const {
    if (int64_t(nfa_.num_states) + count - base_ > in_.max_nfa_states) {
      throw GrammarBuildError("the grammar is too large: its automaton passes " + std::to_string(in_.max_nfa_states) +
                              " states (very long bounded repetitions or deeply duplicated sub-schemas)");
    }
  }
  int32_t new_state() {
    check_room(1);
    return nfa_.num_states++;
  }
  void eps(int32_t a, int32_t b) { nfa_.eps_src.push_back(a), nfa_.eps_dst.push_back(b); }
  void byte(int32_t a, int32_t mask, int32_t b) {
    nfa_.byte_src.push_back(a), nfa_.byte_mask.push_back(mask), nfa_.byte_dst.push_back(b);
  }
  Mark mark() const { return {nfa_.num_states, nfa_.eps_src.size(), nfa_.byte_src.size(), nfa_.call_src.size()}; }

  int32_t intern(const Mask256& m) {
    auto [it, added] = mask_ids_.emplace(m, static_cast<int32_t>(masks_.size()));
    if (added) masks_.push_back(m);
    return it->second;
  }

  // A Bytes object's set as an interned id; -1 for the empty set (which matches nothing).
  int32_t bytes_id(PyObject* expr) {
    auto hit = bytes_ids_.find(expr);
    if (hit != bytes_ids_.end()) return hit->second;
    const Mask256 m = mask_of(attr(expr, "mask", s_mask));
    const bool empty = (m.w[0] | m.w[1] | m.w[2] | m.w[3]) == 0;
    const int32_t id = empty ? -1 : intern(m);
    bytes_ids_.emplace(expr, id);
    return id;
  }

  // --- emission (automata._Builder) ------------------------------------------------------------------
  bool has_refs(PyObject* expr, Kind kind) {
    if (kind == kBytes) return false;
    if (kind == kRef) return true;
    auto hit = refs_.find(expr);
    if (hit != refs_.end()) return hit->second;
    bool found = false;
    if (kind == kSeq || kind == kAlt) {
      py::tuple items = attr(expr, "items", s_items);
      for (const py::handle item : items) {
        if (has_refs(item.ptr(), kind_of(item.ptr()))) {
          found = true;
          break;
        }
      }
    } else {
      py::object item = attr(expr, "item", s_item);
      found = has_refs(item.ptr(), kind_of(item.ptr()));
    }
    refs_.emplace(expr, found);
    return found;
  }

  int32_t emit(PyObject* expr, int32_t entry) {
    const Kind kind = kind_of(expr);
    if (kind == kBytes || kind == kRef) return emit_new(expr, kind, entry);
    KnownPieces& pieces = known_pieces();
    auto it = pieces.entries.find(expr);
    if (it == pieces.entries.end() && has_refs(expr, kind)) return emit_new(expr, kind, entry);
    int32_t known_states = -1;
    if (it != pieces.entries.end()) {
      it->second.last_use = ++pieces.clock;
      known_states = it->second.states;
      if (known_states >= kMinFragmentStates) {
        if (!it->second.minimal && it->second.compilation != compilation_) {
          auto minimal = fragment_from_python(in_.minimal_fragment(py::handle(expr)));
          it = pieces.entries.find(expr);  // Python ran: look again
          if (it == pieces.entries.end()) return emit_new(expr, kind, entry);
          it->second.fragment = std::move(minimal), it->second.minimal = true;
        }
        if (it->second.fragment) {
          std::shared_ptr<const Fragment> fragment = it->second.fragment;
          return replay(*fragment, entry);
        }
      }
    }
    const Mark start = mark();
    const int32_t exit_state = emit_new(expr, kind, entry);
    it = pieces.entries.find(expr);  // emission may have added pieces (and rehashed)
    if (it == pieces.entries.end()) {
      remember(expr, Known{expr, compilation_, nfa_.num_states - start.states, nullptr, false, ++pieces.clock});
    } else if (known_states >= kMinFragmentStates) {  // emitted twice in this compilation: replay the third time
      it->second.fragment = recorded(start, entry, exit_state);
    }
    return exit_state;
  }

  static std::string too_deep() {
    return "the grammar nests expressions more than " + std::to_string(kMaxDepth) + " deep";
  }

  int32_t emit_new(PyObject* expr, Kind kind, int32_t entry) {
    if (++depth_ > kMaxDepth) throw GrammarBuildError(too_deep());
    const int32_t exit_state = emit_kind(expr, kind, entry);
    --depth_;
    return exit_state;
  }

  int32_t emit_kind(PyObject* expr, Kind kind, int32_t entry) {
    switch (kind) {
      case kBytes: {
        const int32_t mask = bytes_id(expr);
        const int32_t out = new_state();
        if (mask >= 0) byte(entry, mask, out);  // an empty set: an unreachable exit
        return out;
      }
      case kSeq: {
        py::tuple items = attr(expr, "items", s_items);
        for (const py::handle item : items) entry = emit(item.ptr(), entry);
        return entry;
      }
      case kAlt: {
        py::tuple items = attr(expr, "items", s_items);
        const int32_t join = new_state();
        for (const py::handle item : items) {
          const int32_t branch = new_state();
          eps(entry, branch);
          eps(emit(item.ptr(), branch), join);
        }
        return join;
      }
      case kRepeat: {
        py::object item = attr(expr, "item", s_item);
        const int64_t min_count = attr(expr, "min_count", s_min).cast<int64_t>();
        py::object max_object = attr(expr, "max_count", s_max);
        entry = emit_copies(item.ptr(), entry, min_count).back();
        if (max_object.is_none()) {
          const int32_t loop = new_state();
          eps(entry, loop);
          eps(emit(item.ptr(), loop), loop);
          return loop;
        }
        const std::vector<int32_t> ends = emit_copies(item.ptr(), entry, max_object.cast<int64_t>() - min_count);
        const int32_t join = new_state();
        for (int32_t end : ends) eps(end, join);
        return join;
      }
      case kRef: {
        const std::string rule = attr(expr, "rule", s_rule).cast<std::string>();
        if (!called_.count(rule)) return emit(rule_expr(rule), entry);
        const int32_t out = new_state();
        nfa_.call_src.push_back(entry), nfa_.call_rule.push_back(rule_id(rule));
        nfa_.call_dst.push_back(out);
        if (nullable_[size_t(plan_index_.at(rule))]) eps(entry, out);
        return out;
      }
      case kExclude:
      case kAvoid: {
        auto product = fragment_from_python(in_.product_fragment(py::handle(expr)));
        if (!product) throw py::value_error("product_fragment returned None");
        return replay(*product, entry);
      }
      default:
        throw GrammarBuildError("unknown grammar expression");
    }
  }

  // `item` `count` times in a row from `entry`: [entry, the end of each copy]. The first copy is emitted,
  // the others copied from its edges (automata._Builder.emit_copies and NFA.replay_chain).
  std::vector<int32_t> emit_copies(PyObject* item, int32_t entry, int64_t count) {
    std::vector<int32_t> ends{entry};
    if (count <= 0) return ends;
    const Mark start = mark();
    ends.push_back(emit(item, entry));
    const Mark stop = mark();
    const int32_t first = start.states, size = stop.states - start.states;
    if (count == 1 || (size == 0 && stop.eps == start.eps && stop.bytes == start.bytes && stop.calls == start.calls)) {
      return ends;  // nothing appended: every copy is the entry
    }
    check_room(int64_t(size) * (count - 1));
    const bool chained = ends.back() >= first;  // else the piece ends at its entry, and so does every copy
    for (int64_t k = 1; k < count; ++k) {
      const int32_t offset = nfa_.num_states - first, copy_entry = chained ? ends.back() : entry;
      const auto moved = [&](int32_t s) { return s >= first ? s + offset : copy_entry; };
      for (size_t e = start.eps; e < stop.eps; ++e) eps(moved(nfa_.eps_src[e]), moved(nfa_.eps_dst[e]));
      for (size_t e = start.bytes; e < stop.bytes; ++e) {
        byte(moved(nfa_.byte_src[e]), nfa_.byte_mask[e], moved(nfa_.byte_dst[e]));
      }
      for (size_t e = start.calls; e < stop.calls; ++e) {
        nfa_.call_src.push_back(moved(nfa_.call_src[e]));
        nfa_.call_rule.push_back(nfa_.call_rule[e]);
        nfa_.call_dst.push_back(moved(nfa_.call_dst[e]));
      }
      nfa_.num_states += size;
      ends.push_back(chained ? ends[1] + offset : entry);
    }
    return ends;
  }

  int32_t replay(const Fragment& f, int32_t entry) {
    check_room(f.size);
    const int32_t base = nfa_.num_states;
    const auto at = [&](int32_t s) { return s < 0 ? entry : s + base; };
    std::vector<int32_t> ids(f.masks.size());
    for (size_t k = 0; k < ids.size(); ++k) ids[k] = intern(f.masks[k]);
    for (size_t e = 0; e < f.eps_src.size(); ++e) eps(at(f.eps_src[e]), at(f.eps_dst[e]));
    for (size_t e = 0; e < f.byte_src.size(); ++e) byte(at(f.byte_src[e]), ids[size_t(f.byte_mask[e])], at(f.byte_dst[e]));
    nfa_.num_states += f.size;
    return f.exit_state < 0 ? entry : f.exit_state + base;
  }

  // The edges appended since `start` as a fragment; null if they touch an older state other than `entry`
  // or call a rule (automata.Fragment.recorded).
  std::shared_ptr<const Fragment> recorded(const Mark& start, int32_t entry, int32_t exit_state) const {
    const int32_t first = start.states;
    if (nfa_.call_src.size() != start.calls) return nullptr;
    const auto local = [&](int32_t s) { return s >= first ? s - first : -1; };
    const auto foreign = [&](int32_t s) { return s < first && s != entry; };
    auto out = std::make_shared<Fragment>();
    out->size = nfa_.num_states - first;
    out->exit_state = local(exit_state);
    for (size_t e = start.eps; e < nfa_.eps_src.size(); ++e) {
      if (foreign(nfa_.eps_src[e]) || foreign(nfa_.eps_dst[e])) return nullptr;
      out->eps_src.push_back(local(nfa_.eps_src[e])), out->eps_dst.push_back(local(nfa_.eps_dst[e]));
    }
    std::unordered_map<int32_t, int32_t> local_mask;
    for (size_t e = start.bytes; e < nfa_.byte_src.size(); ++e) {
      if (foreign(nfa_.byte_src[e]) || foreign(nfa_.byte_dst[e])) return nullptr;
      auto [it, added] = local_mask.emplace(nfa_.byte_mask[e], static_cast<int32_t>(out->masks.size()));
      if (added) out->masks.push_back(masks_[size_t(nfa_.byte_mask[e])]);
      out->byte_src.push_back(local(nfa_.byte_src[e])), out->byte_mask.push_back(it->second);
      out->byte_dst.push_back(local(nfa_.byte_dst[e]));
    }
    return out;
  }

  const IrNfaInputs& in_;
  const uint64_t compilation_;
  PyObject* types_[kKinds];
  RuleNfa nfa_;
  int32_t base_ = 0;
  int depth_ = 0;
  std::vector<Mask256> masks_;
  std::unordered_map<Mask256, int32_t, Mask256Hash> mask_ids_;
  std::unordered_map<PyObject*, int32_t> bytes_ids_;  // the grammar holds every object for the whole build
  std::unordered_map<PyObject*, bool> refs_;  // whether an expression names a rule
  std::unordered_set<PyObject*> walked_;      // expressions whose names the current rule has collected
  std::unordered_map<PyObject*, bool> nullable_memo_;  // rule-free expressions
  std::unordered_map<PyObject*, bool> round_memo_;     // the others, within one round of the fixpoint
  std::vector<std::string> plan_names_;  // the plan's rules: the grammar's, then the start rule
  std::vector<PyObject*> plan_exprs_;
  std::unordered_map<std::string, int32_t> plan_index_;
  std::vector<char> nullable_;  // per plan rule
  std::unordered_set<std::string> called_;  // recursive, or asked for
  std::unordered_map<std::string, int32_t> rule_ids_;
  std::vector<std::string> rule_names_;
  std::vector<std::pair<int32_t, int32_t>> bounds_;  // per rule (discovery order): entry, final; -1 = not yet
};

}  // namespace

grammar::RuleNfa rule_nfa_from_ir(const IrNfaInputs& inputs, std::vector<std::string>& names) {
  return IrNfaBuilder(inputs).build(names);
}

}  // namespace llmkit
