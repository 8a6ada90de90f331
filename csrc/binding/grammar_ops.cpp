// llmkit.kernels._C grammar classes: tables, vocabulary, the per-grammar index and the matcher.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "binding/grammar_ir.h"
#include "binding/tensor_arg.h"
#include "cpu/thread_pool.h"
#include "grammar/grammar_tables.h"
#include "grammar/matcher.h"
#include "grammar/nfa_compiler.h"
#include "grammar/token_walk.h"
#include "grammar/vocabulary.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace llmkit {

namespace {

using grammar::GrammarIndex;
using grammar::GrammarTables;
using grammar::Matcher;
using grammar::Vocabulary;

struct GrammarHandle {
  std::shared_ptr<const GrammarTables> tables;
};
struct VocabularyHandle {
  std::shared_ptr<const Vocabulary> vocabulary;
};

// The row pointer of an int32 [batch, words] CPU bitmask, checked against the vocabulary it must hold.
struct BitmaskRows {
  int32_t* data = nullptr;
  int64_t rows = 0, words = 0, row_stride = 0;
};

BitmaskRows bitmask_rows(py::handle bitmask, int vocab_size) {
  TensorArg m("bitmask", bitmask, true);
  m.dtype_in({DType::kInt32}).rank(2).compact_from(1);
  if (m.device() != DeviceKind::kCPU) raise_value_error("bitmask must be on the CPU, got " + m.device_string());
  const int64_t needed = (vocab_size + 31) / 32;
  if (m.size(1) < needed) {
    raise_value_error("bitmask must have at least " + std::to_string(needed) + " words per row for a vocabulary of " +
                      std::to_string(vocab_size) + ", got shape " + m.shape_string());
  }
  return BitmaskRows{static_cast<int32_t*>(m.data()), m.size(0), m.size(1), m.size(0) > 1 ? m.stride(0) : m.size(1)};
}

void check_row(const BitmaskRows& b, int64_t row) {
  if (row < 0 || row >= b.rows) {
    raise_value_error("row " + std::to_string(row) + " is outside the bitmask's " + std::to_string(b.rows) + " rows");
  }
}

void fill_one(Matcher& matcher, py::handle bitmask, int64_t row) {
  BitmaskRows b = bitmask_rows(bitmask, matcher.vocab_size());
  check_row(b, row);
  if (matcher.fill_cached_mask(b.data + row * b.row_stride, b.words)) return;  // a copy: not worth the GIL
  py::gil_scoped_release release;
  matcher.fill_computed_mask(b.data + row * b.row_stride, b.words);
}

void restrict_to_budget(Matcher& matcher, py::handle bitmask, int64_t row, int64_t tokens_left) {
  BitmaskRows b = bitmask_rows(bitmask, matcher.vocab_size());
  check_row(b, row);
  py::gil_scoped_release release;
  matcher.restrict_mask(b.data + row * b.row_stride, b.words, tokens_left);
}

void fill_batch(const std::vector<Matcher*>& matchers, py::handle bitmask, const std::vector<int64_t>& rows,
                int num_threads) {
  if (matchers.size() != rows.size()) raise_value_error("fill_batch needs one row per matcher");
  int vocab_size = 0;
  for (const Matcher* matcher : matchers) {
    if (matcher == nullptr) raise_value_error("fill_batch got None instead of a matcher");
    vocab_size = std::max(vocab_size, matcher->vocab_size());
  }
  std::vector<const Matcher*> distinct(matchers.begin(), matchers.end());
  std::sort(distinct.begin(), distinct.end());
  if (std::adjacent_find(distinct.begin(), distinct.end()) != distinct.end()) {
    raise_value_error("fill_batch got the same matcher twice; each row needs its own matcher");
  }
  BitmaskRows b = bitmask_rows(bitmask, vocab_size);
  for (int64_t row : rows) check_row(b, row);
  py::gil_scoped_release release;
  const int64_t count = static_cast<int64_t>(matchers.size());
  std::exception_ptr failure;  // an exception must not leave a pool region: the first one is rethrown
  std::mutex failure_lock;
  cpu::parallel_for_dynamic(count, num_threads > 0 ? num_threads : 1, [&](int64_t i) {
    try {
      matchers[size_t(i)]->fill_mask(b.data + rows[size_t(i)] * b.row_stride, b.words);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_lock);
      if (!failure) failure = std::current_exception();
    }
  });
  if (failure) std::rethrow_exception(failure);
}

// Table arguments: numpy arrays of exactly these dtypes (or lists), read as flat buffers and copied once,
// with no Python object per element (a 1,456 x 44 transition table took 2.6 ms as a list).
using Int32Array = py::array_t<int32_t, py::array::c_style>;
using Uint8Array = py::array_t<uint8_t, py::array::c_style>;

template <typename T>
std::vector<T> to_vector(const py::array_t<T, py::array::c_style>& array) {
  return std::vector<T>(array.data(), array.data() + array.size());
}

// An NFA's edge lists as the Python compiler builds them (lists of ints: read item by item through the C
// API, about 3x faster than numpy's conversion of a list), or any array of integers.
std::vector<int32_t> int32_vector(const py::handle& values, const char* name) {
  if (!PyList_CheckExact(values.ptr())) return to_vector(py::cast<Int32Array>(values));
  const Py_ssize_t n = PyList_GET_SIZE(values.ptr());
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    const long v = PyLong_AsLong(PyList_GET_ITEM(values.ptr(), i));
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (v < INT32_MIN || v > INT32_MAX) {
      throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v) +
                            " does not fit in int32");
    }
    out[static_cast<size_t>(i)] = static_cast<int32_t>(v);
  }
  return out;
}

// The native compiler's answer as the bindings return it: (the flat tables as arrays: kept rules, rule starts,
// state rules, accepting, byte classes, class count, transitions, call CSR; the same tables as a
// GrammarTables), or the message of why the grammar is refused.
py::object compiled_or_refusal(const grammar::RuleNfa& nfa, int32_t max_dfa_states) {
  grammar::CompiledTables t;
  std::string refused;
  {
    py::gil_scoped_release release;
    try {
      t = grammar::compile_rule_nfas(nfa, max_dfa_states);
    } catch (const grammar::GrammarBuildError& err) {
      refused = err.what();
    }
  }
  if (!refused.empty()) return py::str(refused);
  auto array = [](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
  };
  py::tuple arrays = py::make_tuple(array(t.kept_rules), array(t.rule_start), array(t.state_rule), array(t.accepting),
                                    array(t.byte_class), t.num_classes, array(t.transitions), array(t.call_offsets),
                                    array(t.call_rules), array(t.call_targets));
  GrammarHandle tables{grammar::adopt_grammar_tables(std::move(t.rule_start), std::move(t.state_rule),
                                                     std::move(t.accepting), std::move(t.byte_class),
                                                     std::move(t.transitions), t.num_classes,
                                                     std::move(t.call_offsets), std::move(t.call_rules),
                                                     std::move(t.call_targets))};
  return py::make_tuple(arrays, py::cast(std::move(tables)));
}

}  // namespace

void bind_grammar(py::module_& m) {
  py::class_<GrammarHandle>(m, "GrammarTables", "A compiled grammar's tables, checked on construction.")
      .def(py::init([](const Int32Array& rule_start, const Int32Array& state_rule, const Uint8Array& accepting,
                       const Int32Array& byte_class, const Int32Array& transitions, int num_classes,
                       const Int32Array& call_offsets, const Int32Array& call_rules, const Int32Array& call_targets) {
             return GrammarHandle{grammar::make_grammar_tables(
                 to_vector(rule_start), to_vector(state_rule), to_vector(accepting), to_vector(byte_class),
                 to_vector(transitions), num_classes, to_vector(call_offsets), to_vector(call_rules),
                 to_vector(call_targets))};
           }),
           "rule_start"_a, "state_rule"_a, "accepting"_a, "byte_class"_a, "transitions"_a, "num_classes"_a,
           "call_offsets"_a, "call_rules"_a, "call_targets"_a)
      .def_property_readonly("num_states", [](const GrammarHandle& h) { return h.tables->num_states; });

  py::class_<VocabularyHandle>(m, "Vocabulary", "Token byte strings and their trie.")
      .def(py::init([](const std::vector<std::optional<std::string>>& token_bytes, std::vector<int32_t> stop_ids) {
             return VocabularyHandle{grammar::make_vocabulary(token_bytes, std::move(stop_ids))};
           }),
           "token_bytes"_a, "stop_token_ids"_a)
      .def_property_readonly("vocab_size", [](const VocabularyHandle& h) { return h.vocabulary->vocab_size; })
      .def_property_readonly("num_nodes", [](const VocabularyHandle& h) { return h.vocabulary->node_byte.size(); })
      .def_property_readonly("max_token_length",
                             [](const VocabularyHandle& h) { return h.vocabulary->max_token_length; });

  py::class_<GrammarIndex, std::shared_ptr<GrammarIndex>>(
      m, "GrammarIndex", "A grammar over one vocabulary: depth-L state classes and the shared token-mask cache.")
      .def(py::init([](const GrammarHandle& g, const VocabularyHandle& v) {
             py::gil_scoped_release release;
             return std::make_shared<GrammarIndex>(g.tables, v.vocabulary);
           }),
           "grammar"_a, "vocabulary"_a)
      .def(
          "precompute",
          [](GrammarIndex& self, int num_threads) {
            py::gil_scoped_release release;
            self.precompute(num_threads);
          },
          "num_threads"_a = 1, "Compute the token classification of every state class now (GIL released).")
      .def_property_readonly("num_state_classes", &GrammarIndex::num_classes, "Computes the classes if not yet.")
      .def_property_readonly("has_state_classes", &GrammarIndex::has_classes,
                             "Whether the state classes are computed (precompute, or a few first visits).")
      .def_property_readonly("cache_size", &GrammarIndex::cache_size)
      .def_property_readonly("cache_bytes", &GrammarIndex::cache_bytes)
      .def_property_readonly("num_masks", &GrammarIndex::num_masks);

  py::class_<Matcher>(m, "GrammarMatcher", "One generation's Earley chart over a GrammarIndex.")
      .def(py::init<std::shared_ptr<GrammarIndex>, std::vector<int32_t>>(), "index"_a, "stop_token_ids"_a)
      .def("accept_token", &Matcher::accept_token, "token_id"_a)
      .def("accept_bytes", [](Matcher& self, const py::bytes& data) { return self.accept_bytes(std::string(data)); },
           "data"_a)
      .def("rollback", &Matcher::rollback, "count"_a)
      .def("reset", &Matcher::reset)
      .def("is_terminated", &Matcher::is_terminated)
      .def("can_terminate", &Matcher::can_terminate)
      .def_property_readonly("num_accepted_tokens", &Matcher::num_accepted_tokens)
      .def("fill_next_token_bitmask", &fill_one, "bitmask"_a, "row"_a = 0,
           "Write the allowed tokens into row `row` of an int32 [batch, words] CPU bitmask (GIL released).")
      .def("restrict_to_budget", &restrict_to_budget, "bitmask"_a, "row"_a, "tokens_left"_a,
           "Clear, in a filled row, the tokens after which the grammar could not finish within tokens_left.")
      .def("finish_cost", &Matcher::finish_cost)
      .def("find_forced_bytes",
           [](Matcher& self, int limit) { return py::bytes(self.forced_bytes(limit)); }, "limit"_a = 256);

  m.def(
      "refine_dfa_rows",
      [](const py::array_t<int64_t, py::array::c_style>& table, const py::array_t<int64_t, py::array::c_style>& initial,
         std::optional<int64_t> max_rounds) {
        if (table.ndim() != 2) {
          raise_value_error("table must be 2-D [rows, symbols], got " + std::to_string(table.ndim()) + "-D");
        }
        const int64_t rows = table.shape(0), symbols = table.shape(1);
        if (initial.ndim() != 1 || initial.shape(0) != rows) {
          raise_value_error("initial must hold one block per table row (" + std::to_string(rows) + ")");
        }
        const int64_t* data = table.data();
        for (int64_t k = 0; k < rows * symbols; ++k) {
          if (data[k] < 0 || data[k] >= rows) {
            raise_value_error("table entry " + std::to_string(data[k]) + " is not a row");
          }
        }
        std::vector<int64_t> blocks;
        {
          py::gil_scoped_release release;
          blocks = grammar::refine_rows(data, rows, symbols, initial.data(), max_rounds.value_or(-1));
        }
        py::array_t<int64_t> out(rows);
        std::copy(blocks.begin(), blocks.end(), out.mutable_data());
        return out;
      },
      "table"_a, "initial"_a, "max_rounds"_a = py::none(),
      "Moore refinement of a DFA's dense table rows from an initial partition (block ids, first appearance).");

  m.def(
      "compile_rule_nfas",
      [](int32_t num_states, const py::object& eps_src, const py::object& eps_dst, const py::object& byte_src,
         const py::object& byte_mask, const py::object& byte_dst, const py::array_t<uint64_t, py::array::c_style>& masks,
         const py::object& call_src, const py::object& call_rule, const py::object& call_dst,
         const py::object& rule_entry, const py::object& rule_final, int32_t max_dfa_states) -> py::object {
        grammar::RuleNfa nfa;
        nfa.num_states = num_states;
        nfa.eps_src = int32_vector(eps_src, "eps_src"), nfa.eps_dst = int32_vector(eps_dst, "eps_dst");
        nfa.byte_src = int32_vector(byte_src, "byte_src"), nfa.byte_mask = int32_vector(byte_mask, "byte_mask");
        nfa.byte_dst = int32_vector(byte_dst, "byte_dst");
        nfa.masks.assign(masks.data(), masks.data() + masks.size());
        nfa.call_src = int32_vector(call_src, "call_src"), nfa.call_rule = int32_vector(call_rule, "call_rule");
        nfa.call_dst = int32_vector(call_dst, "call_dst");
        nfa.rule_entry = int32_vector(rule_entry, "rule_entry"), nfa.rule_final = int32_vector(rule_final, "rule_final");
        return compiled_or_refusal(nfa, max_dfa_states);
      },
      "num_states"_a, "eps_src"_a, "eps_dst"_a, "byte_src"_a, "byte_mask"_a, "byte_dst"_a, "masks"_a, "call_src"_a,
      "call_rule"_a, "call_dst"_a, "rule_entry"_a, "rule_final"_a, "max_dfa_states"_a,
      "A grammar's Thompson NFA -> (its flat tables as arrays: kept rules, rule starts, state rules, accepting, "
      "byte classes, class count, transitions, call CSR; the same tables as a GrammarTables), or the message of "
      "why the grammar is refused.");

  m.def(
      "compile_grammar_ir",
      [](const py::dict& rules, const std::string& root, const py::object& asked_calls, const std::string& start_rule,
         const py::object& start_expr, const py::object& product_fragment, const py::object& minimal_fragment,
         const py::tuple& types, int32_t max_nfa_states, int32_t max_dfa_states) -> py::object {
        IrNfaInputs inputs{rules,      root,     asked_calls, start_rule, start_expr, product_fragment, minimal_fragment,
                           types, max_nfa_states};
        std::vector<std::string> names;
        grammar::RuleNfa nfa;
        try {
          nfa = rule_nfa_from_ir(inputs, names);
        } catch (const grammar::GrammarBuildError& err) {
          return py::str(err.what());
        }
        py::object result = compiled_or_refusal(nfa, max_dfa_states);
        if (py::isinstance<py::str>(result)) return result;
        return py::make_tuple(py::cast(names), result[py::int_(0)], result[py::int_(1)]);
      },
      "rules"_a, "root"_a, "asked_calls"_a, "start_rule"_a, "start_expr"_a, "product_fragment"_a,
      "minimal_fragment"_a, "types"_a, "max_nfa_states"_a, "max_dfa_states"_a,
      "A grammar's IR (its rules, root and asked-for calls; the start rule's name and its Ref to the root; the two "
      "Python hooks; the IR classes) -> (rule names, the arrays and GrammarTables of compile_rule_nfas), or the "
      "message of why it is refused (an undefined rule, too large, matching nothing).");

  m.def("fill_grammar_bitmasks", &fill_batch, "matchers"_a, "bitmask"_a, "rows"_a, "num_threads"_a = 1,
        "Fill one bitmask row per matcher, in parallel, without the GIL.");
}

}  // namespace llmkit
