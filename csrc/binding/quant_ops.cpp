// quant_matmul, dequantize_rows and the LlamaForward class: argument checks, then the CPU kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "binding/op_support.h"
#include "binding/tensor_arg.h"
#include "cpu/int8_repack.h"
#include "cpu/kernel_table.h"
#include "cpu/thread_pool.h"
#include "cuda/launch.h"
#include "model/llama_forward.h"

namespace llmkit {

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

struct FormatEntry {
  const char* name;
  WeightFormat format;
  int64_t block_elems;
  int64_t block_bytes;
};

constexpr FormatEntry kFormats[] = {
    {"f32", WeightFormat::kF32, 1, 4},       {"f16", WeightFormat::kF16, 1, 2},
    {"bf16", WeightFormat::kBF16, 1, 2},     {"q8_0", WeightFormat::kQ8_0, 32, 34},
    {"q4_0", WeightFormat::kQ4_0, 32, 18},   {"q4_1", WeightFormat::kQ4_1, 32, 20},
    {"q5_0", WeightFormat::kQ5_0, 32, 22},   {"q5_1", WeightFormat::kQ5_1, 32, 24},
    {"q4_k", WeightFormat::kQ4_K, 256, 144}, {"q5_k", WeightFormat::kQ5_K, 256, 176},
    {"q6_k", WeightFormat::kQ6_K, 256, 210},
};

const FormatEntry& format_entry(const std::string& name) {
  for (const FormatEntry& f : kFormats) {
    if (name == f.name) return f;
  }
  std::string known;
  for (const FormatEntry& f : kFormats) known += (known.empty() ? "" : ", ") + std::string(f.name);
  raise_value_error("weight format must be one of " + known + ", got '" + name + "'");
}

// A stored weight: uint8 [rows, row_bytes] holding `cols` elements per row in `format`.
WeightView weight_view(const std::string& name, py::handle tensor, const std::string& format, int64_t cols) {
  TensorArg w(name.c_str(), tensor);
  w.dtype_in({DType::kUInt8}).rank(2).contiguous();
  const FormatEntry& f = format_entry(format);
  if (cols <= 0 || cols % f.block_elems != 0) {
    raise_value_error(name + ": cols must be a positive multiple of " + std::to_string(f.block_elems) + " for " +
                      f.name + ", got " + std::to_string(cols));
  }
  const int64_t row_bytes = cols / f.block_elems * f.block_bytes;
  w.dim_is(1, row_bytes, std::to_string(cols) + " " + f.name + " elements per row");
  WeightView view;
  view.data = w.data();
  view.format = f.format;
  view.rows = w.size(0);
  view.cols = cols;
  view.row_bytes = row_bytes;
  return view;
}

// A float32 vector of `length` elements (nullptr for None) on the device of `device_of`, whose kernel reads it.
const float* float_vector(const std::string& name, py::handle tensor, int64_t length, const TensorArg& device_of) {
  if (tensor.is_none()) return nullptr;
  TensorArg t(name.c_str(), tensor);
  t.same_device_as(device_of).dtype_in({DType::kFloat32}).rank(1).contiguous().dim_is(0, length, "elements");
  return static_cast<const float*>(t.data());
}

void quant_matmul(py::handle out, py::handle x, py::handle weight, const std::string& format, int64_t cols,
                  py::handle bias, int num_threads, bool int8_activations, uintptr_t stream) {
  const WeightView w = weight_view("weight", weight, format, cols);
  TensorArg weight_arg("weight", weight);
  TensorArg xs("x", x);
  xs.same_device_as(weight_arg);
  xs.dtype_in({DType::kFloat32}).rank(2).dim_is(1, cols, "the weight's columns").compact_from(1);
  TensorArg o("out", out, true);
  o.same_device_as(xs).dtype_in({DType::kFloat32}).rank(2).dim_is(0, xs.size(0), "x's rows");
  o.dim_is(1, w.rows, "the weight's rows").compact_from(1);
  QuantMatmulArgs a;
  a.x = static_cast<const float*>(xs.data());
  a.x_stride = xs.stride(0);
  a.weight = w.data;
  a.format = w.format;
  a.row_bytes = w.row_bytes;
  a.rows = w.rows;
  a.cols = w.cols;
  a.n = xs.size(0);
  a.out = static_cast<float*>(o.data());
  a.out_stride = o.stride(0);
  a.bias = float_vector("bias", bias, w.rows, xs);
  a.int8_activations = int8_activations;
  if (int8_activations && xs.device() != DeviceKind::kCPU) {
    raise_value_error("int8 activations run on the CPU only; x is on " + xs.device_string() +
                      ": use float32 activations there");
  }
  if (a.n == 0 || a.rows == 0) return;
  if (runs_on_cuda(xs)) {  // float32 activations only (checked above)
#if defined(LLMKIT_WITH_CUDA)
    cuda::quant_matmul(a, cuda::Launch{xs.device_id(), stream});
#else
    (void)stream;
#endif
    return;
  }
  py::gil_scoped_release release;
  cpu::active_table().quant_matmul(a, num_threads > 0 ? num_threads : 1);
}

void dequantize_rows(py::handle out, py::handle weight, const std::string& format, int64_t cols, py::handle ids) {
  const WeightView w = weight_view("weight", weight, format, cols);
  if (TensorArg("weight", weight).device() != DeviceKind::kCPU) raise_value_error("dequantize_rows runs on the CPU only");
  TensorArg i("ids", ids);
  i.dtype_in({DType::kInt64}).rank(1).contiguous();
  TensorArg o("out", out, true);
  o.dtype_in({DType::kFloat32}).rank(2).contiguous().dim_is(0, i.size(0), "ids").dim_is(1, cols, "cols");
  const int64_t* id = static_cast<const int64_t*>(i.data());
  for (int64_t k = 0; k < i.size(0); ++k) {
    if (id[k] < 0 || id[k] >= w.rows) {
      raise_value_error("ids[" + std::to_string(k) + "] = " + std::to_string(id[k]) + " is not a row in [0, " +
                        std::to_string(w.rows) + ")");
    }
  }
  QuantMatmulArgs a;
  a.weight = w.data;
  a.format = w.format;
  a.row_bytes = w.row_bytes;
  a.rows = w.rows;
  a.cols = cols;
  a.out = static_cast<float*>(o.data());
  a.out_stride = cols;
  py::gil_scoped_release release;
  cpu::active_table().dequantize_rows(a, id, i.size(0));
}

// A Q8_0/Q4_0/Q4_1 weight repacked for the int8-activation matmul (cpu/int8_repack.h): built once per
// weight (the LM head) and reused by every call; holds nothing of the stored tensor after building.
class PyPackedInt8Weight {
 public:
  PyPackedInt8Weight(py::handle weight, const std::string& format, int64_t cols, bool release_stored) {
    const WeightView w = weight_view("weight", weight, format, cols);
    if (TensorArg("weight", weight).device() != DeviceKind::kCPU) raise_value_error("weight must be on the CPU");
    if (!repackable_for_int8(w.format)) {
      raise_value_error("only q8_0, q4_0 and q4_1 weights are repacked for int8 activations, got '" + format + "'");
    }
    {
      py::gil_scoped_release release;
      buffer_ = std::make_unique<PackedInt8Buffer>(static_cast<const uint8_t*>(w.data), w.format, w.rows, w.cols,
                                                   release_stored);
    }
  }

  // out[n, rows] = int8(x) @ W^T (+ bias), x quantized once per call (per 32 columns, as quant_matmul does).
  void matmul(py::handle out, py::handle x, py::handle bias, int num_threads) const {
    const PackedInt8Weight& w = buffer_->view();
    TensorArg xs("x", x);
    xs.dtype_in({DType::kFloat32}).rank(2).dim_is(1, w.cols, "the weight's columns").compact_from(1);
    if (xs.device() != DeviceKind::kCPU) raise_value_error("x must be on the CPU");
    TensorArg o("out", out, true);
    o.same_device_as(xs).dtype_in({DType::kFloat32}).rank(2).dim_is(0, xs.size(0), "x's rows");
    o.dim_is(1, w.rows, "the weight's rows").compact_from(1);
    QuantMatmulArgs a;
    a.x = static_cast<const float*>(xs.data());
    a.x_stride = xs.stride(0);
    a.format = w.format;
    a.rows = w.rows;
    a.cols = w.cols;
    a.n = xs.size(0);
    a.out = static_cast<float*>(o.data());
    a.out_stride = o.stride(0);
    a.bias = float_vector("bias", bias, w.rows, xs);
    a.int8_activations = true;
    if (a.n == 0 || a.rows == 0) return;
    py::gil_scoped_release release;
    const cpu::KernelTable& kernels = cpu::active_table();
    std::vector<int8_t> q(size_t(a.n * a.cols));
    std::vector<float> scale(size_t(a.n * a.cols / 32)), sum(size_t(a.n * a.cols / 32));
    kernels.quantize_q8(a.x, a.x_stride, a.n, a.cols, q.data(), scale.data(), sum.data());
    a.x_q8 = q.data();
    a.x_q8_scale = scale.data();
    a.x_q8_sum = sum.data();
    const int threads = a.rows * a.cols * a.n < (1 << 16) ? 1 : (num_threads > 0 ? num_threads : 1);
    cpu::parallel_for_ranges(a.rows, kPackRows, threads,
                             [&](int64_t begin, int64_t end) { kernels.int8_packed_rows(a, w, begin, end); });
  }

  int64_t rows() const { return buffer_->view().rows; }
  int64_t cols() const { return buffer_->view().cols; }
  int64_t nbytes() const { return buffer_->bytes(); }
  bool released() const { return buffer_->released(); }
  const PackedInt8Weight& view() const { return buffer_->view(); }

 private:
  std::unique_ptr<PackedInt8Buffer> buffer_;
};

// Python-facing owner of a native forward: holds every tensor it points into.
class PyLlamaForward {
 public:
  PyLlamaForward(const py::dict& shape, const py::tuple& embedding, py::handle final_norm, const py::list& layers)
      : owned_(py::list()) {
    LlamaShape s;
    s.hidden = shape["hidden"].cast<int64_t>();
    s.heads = shape["heads"].cast<int64_t>();
    s.kv_heads = shape["kv_heads"].cast<int64_t>();
    s.head_dim = shape["head_dim"].cast<int64_t>();
    s.intermediate = shape["intermediate"].cast<int64_t>();
    s.rms_eps = shape["rms_eps"].cast<float>();
    s.rope_attention_scaling = shape["rope_attention_scaling"].cast<float>();
    s.inv_freq = shape["inv_freq"].cast<std::vector<float>>();
    s.int8_activations = shape["int8_activations"].cast<bool>();
    s.release_stored = shape.contains("release_stored") && shape["release_stored"].cast<bool>();
    if (s.head_dim > kCpuMaxHeadDim || s.head_dim % 2 != 0 || int64_t(s.inv_freq.size()) != s.head_dim / 2) {
      raise_value_error("head_dim must be even and at most " + std::to_string(kCpuMaxHeadDim) +
                        " with head_dim / 2 inverse frequencies");
    }
    if (s.kv_heads <= 0 || s.heads % s.kv_heads != 0) raise_value_error("heads must be a multiple of kv_heads");
    WeightView embed = weight(embedding, "embedding", s.hidden);
    if (embedding.size() > 3 && !embedding[3].is_none()) {  // the tied LM head's packed copy: lookups read it
      const PyPackedInt8Weight& packed = embedding[3].cast<const PyPackedInt8Weight&>();
      const PackedInt8Weight& view = packed.view();
      if (view.rows != embed.rows || view.cols != embed.cols || view.format != embed.format) {
        raise_value_error("the packed embedding must be the embedding's own repacked copy");
      }
      owned_.append(embedding[3]);
      embed.packed = &view;
    }
    vocab_ = embed.rows;
    const float* norm = vector(final_norm, "final_norm", s.hidden);
    std::vector<LayerWeights> built;
    for (size_t l = 0; l < layers.size(); ++l) {
      const py::dict layer = layers[l].cast<py::dict>();
      const std::string at = "layers[" + std::to_string(l) + "].";
      LayerWeights w;
      w.attn_norm = vector(layer["attn_norm"], at + "attn_norm", s.hidden);
      w.ffn_norm = vector(layer["ffn_norm"], at + "ffn_norm", s.hidden);
      w.q = weight(layer["q"], at + "q", s.hidden, s.heads * s.head_dim);
      w.k = weight(layer["k"], at + "k", s.hidden, s.kv_heads * s.head_dim);
      w.v = weight(layer["v"], at + "v", s.hidden, s.kv_heads * s.head_dim);
      w.o = weight(layer["o"], at + "o", s.heads * s.head_dim, s.hidden);
      w.gate = weight(layer["gate"], at + "gate", s.hidden, s.intermediate);
      w.up = weight(layer["up"], at + "up", s.hidden, s.intermediate);
      w.down = weight(layer["down"], at + "down", s.intermediate, s.hidden);
      w.q_bias = vector(layer["q_bias"], at + "q_bias", s.heads * s.head_dim);
      w.k_bias = vector(layer["k_bias"], at + "k_bias", s.kv_heads * s.head_dim);
      w.v_bias = vector(layer["v_bias"], at + "v_bias", s.kv_heads * s.head_dim);
      const py::tuple cache = layer["cache"].cast<py::tuple>();
      CacheArgs args(cache[0].cast<std::string>(), cache[1], cache[2], cache[3], cache[4], true);
      for (int i = 1; i < 5; ++i) owned_.append(cache[i]);
      w.cache = args.view();
      if (w.cache.num_kv_heads != s.kv_heads || w.cache.head_dim != s.head_dim) {
        raise_value_error(at + "cache must hold " + std::to_string(s.kv_heads) + " kv heads of " +
                          std::to_string(s.head_dim));
      }
      if (args.key().device() != DeviceKind::kCPU) raise_value_error(at + "cache must be on the CPU");
      built.push_back(w);
    }
    if (built.empty()) raise_value_error("layers must not be empty");
    first_cache_ = built[0].cache;
    forward_ = std::make_unique<LlamaForward>(std::move(s), embed, norm, std::move(built));
  }

  void run(py::handle hidden_out, py::handle input_ids, py::handle positions, py::handle slot_mapping,
           int64_t num_decode, py::handle decode_block_tables, py::handle decode_seq_lens,
           py::handle prefill_block_tables, py::handle prefill_seq_lens, py::handle query_start_loc,
           int64_t num_layers, double scale, int num_threads, py::handle embedding_rows, py::handle embeddings) {
    const LlamaShape& s = forward_->shape();
    TensorArg ids("input_ids", input_ids);
    ids.dtype_in({DType::kInt64}).rank(1).contiguous();
    const int64_t n = ids.size(0);
    TensorArg pos("positions", positions);
    pos.dtype_in({DType::kInt64}).rank(1).contiguous().dim_is(0, n, "input_ids' tokens");
    TensorArg slots("slot_mapping", slot_mapping);
    TensorArg out("hidden_out", hidden_out, true);
    out.dtype_in({DType::kFloat32}).rank(2).contiguous().dim_is(0, n, "input_ids' tokens");
    out.dim_is(1, s.hidden, "hidden size");
    ForwardStep step;
    step.tokens = n;
    step.input_ids = static_cast<const int64_t*>(ids.data());
    step.positions = static_cast<const int64_t*>(pos.data());
    step.slot_mapping = index_vector(slots, n, "input_ids' tokens");
    step.num_decode = num_decode;
    step.num_layers = num_layers < 0 ? forward_->num_layers() : num_layers;
    step.attention_scale = float(scale);
    step.num_threads = num_threads > 0 ? num_threads : 1;
    step.hidden_out = static_cast<float*>(out.data());
    if (num_decode < 0 || num_decode > n) raise_value_error("num_decode must be in [0, tokens]");
    TensorArg dt("decode_block_tables", decode_block_tables), ds("decode_seq_lens", decode_seq_lens);
    TensorArg pt("prefill_block_tables", prefill_block_tables), ps("prefill_seq_lens", prefill_seq_lens);
    TensorArg qs("query_start_loc", query_start_loc);
    table(dt, num_decode, &step.decode_block_tables, &step.decode_max_blocks);
    step.decode_seq_lens = index_vector(ds, num_decode, "decoding sequences");
    step.num_prefill = ps.ndim() == 1 ? ps.size(0) : 0;
    table(pt, step.num_prefill, &step.prefill_block_tables, &step.prefill_max_blocks);
    step.prefill_seq_lens = index_vector(ps, step.num_prefill, "prefill sequences");
    step.query_start_loc = index_vector(qs, step.num_prefill + 1, "prefill sequences + 1");
    check_step(step);
    if (embedding_rows.is_none() != embeddings.is_none()) {
      raise_value_error("embedding_rows and embeddings must be given together");
    }
    if (!embedding_rows.is_none()) {
      TensorArg rows("embedding_rows", embedding_rows);
      rows.dtype_in({DType::kInt64}).rank(1).contiguous().same_device_as(ids);
      TensorArg values("embeddings", embeddings);
      values.dtype_in({DType::kFloat32}).rank(2).contiguous().same_device_as(ids);
      values.dim_is(0, rows.size(0), "embedding_rows' length").dim_is(1, s.hidden, "hidden size");
      step.num_embedded = rows.size(0);
      step.embedded_rows = static_cast<const int64_t*>(rows.data());
      step.embedded = static_cast<const float*>(values.data());
      for (int64_t r = 0; r < step.num_embedded; ++r) {
        if (step.embedded_rows[r] < 0 || step.embedded_rows[r] >= n) {
          raise_value_error("embedding_rows[" + std::to_string(r) + "] is outside [0, tokens)");
        }
      }
    }
    py::gil_scoped_release release;
    forward_->run(step);
  }

  int64_t vocab_size() const { return vocab_; }
  int64_t packed_bytes() const { return forward_->packed_bytes(); }
  int64_t released_bytes() const { return forward_->released_bytes(); }

 private:
  WeightView weight(py::handle spec, const std::string& name, int64_t cols, int64_t rows = -1) {
    const py::tuple t = spec.cast<py::tuple>();
    owned_.append(t[0]);
    const WeightView w = weight_view(name, t[0], t[1].cast<std::string>(), t[2].cast<int64_t>());
    if (w.cols != cols || (rows >= 0 && w.rows != rows)) {
      raise_value_error(name + " must be [" + (rows >= 0 ? std::to_string(rows) : "rows") + ", " +
                        std::to_string(cols) + "], got [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                        "]");
    }
    return w;
  }

  // A norm or bias of the forward, which runs on the CPU.
  const float* vector(py::handle tensor, const std::string& name, int64_t length) {
    owned_.append(tensor);
    if (tensor.is_none()) return nullptr;
    const TensorArg t(name.c_str(), tensor);
    if (t.device() != DeviceKind::kCPU) raise_value_error(name + " must be on the CPU, got " + t.device_string());
    return float_vector(name, tensor, length, t);
  }

  static void table(TensorArg& t, int64_t rows, IndexView* view, int64_t* width) {
    t.dtype_in({DType::kInt32, DType::kInt64}).rank(2).contiguous().dim_is(0, rows, "sequences");
    view->data = t.data();
    view->wide = t.dtype() == DType::kInt64;
    view->row_stride = t.size(1);
    *width = t.size(1);
  }

  // Every id, slot, length and block id the kernels will read is in range.
  void check_step(const ForwardStep& step) const {
    for (int64_t t = 0; t < step.tokens; ++t) {
      if (step.input_ids[t] < 0 || step.input_ids[t] >= vocab_) {
        raise_value_error("input_ids[" + std::to_string(t) + "] = " + std::to_string(step.input_ids[t]) +
                          " is not a token id in [0, " + std::to_string(vocab_) + ")");
      }
    }
    const CacheView& c = first_cache_;
    const int64_t capacity = c.num_blocks * c.block_size;
    for (int64_t t = 0; t < step.tokens; ++t) {
      if (step.slot_mapping.at(t) >= capacity) {
        raise_value_error("slot_mapping[" + std::to_string(t) + "] is outside the cache's " +
                          std::to_string(capacity) + " slots");
      }
    }
    check_sequences(step.decode_block_tables, step.decode_max_blocks, step.decode_seq_lens, step.num_decode, c,
                    "decode");
    check_sequences(step.prefill_block_tables, step.prefill_max_blocks, step.prefill_seq_lens, step.num_prefill, c,
                    "prefill");
    const int64_t prefill_tokens = step.tokens - step.num_decode;
    if (step.query_start_loc.at(0) != 0 || step.query_start_loc.at(step.num_prefill) != prefill_tokens) {
      raise_value_error("query_start_loc must run from 0 to the " + std::to_string(prefill_tokens) +
                        " prefill tokens");
    }
    for (int64_t b = 0; b < step.num_prefill; ++b) {
      const int64_t q_len = step.query_start_loc.at(b + 1) - step.query_start_loc.at(b);
      if (q_len < 0 || q_len > step.prefill_seq_lens.at(b)) {
        raise_value_error("query_start_loc must not decrease and each chunk must fit its prefill_seq_lens");
      }
    }
  }

  static void check_sequences(const IndexView& tables, int64_t width, const IndexView& lens, int64_t count,
                              const CacheView& c, const char* kind) {
    for (int64_t b = 0; b < count; ++b) {
      const int64_t len = lens.at(b);
      if (len < 1 || len > width * c.block_size) {
        raise_value_error(std::string(kind) + "_seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) +
                          " is outside [1, block table width * block_size]");
      }
      for (int64_t i = 0; i < (len + c.block_size - 1) / c.block_size; ++i) {
        const int64_t block = tables.at(b, i);
        if (block < 0 || block >= c.num_blocks) {
          raise_value_error(std::string(kind) + "_block_tables[" + std::to_string(b) + ", " + std::to_string(i) +
                            "] = " + std::to_string(block) + " is not a block id");
        }
      }
    }
  }

  py::list owned_;
  std::unique_ptr<LlamaForward> forward_;
  int64_t vocab_ = 0;
  CacheView first_cache_;
};


}  // namespace

void bind_quant(py::module_& m) {
  m.def("quant_matmul", &quant_matmul, "out"_a, "x"_a, "weight"_a, "format"_a, "cols"_a, "bias"_a = py::none(),
        "num_threads"_a = 1, "int8_activations"_a = false, "stream"_a = 0,
        "out[n, rows] = x[n, cols] @ dequantize(weight)^T (+ bias); int8_activations quantizes x per 32 columns "
        "first (Q8_0/Q4_0/Q4_1 weights).");
  m.def("dequantize_rows", &dequantize_rows, "out"_a, "weight"_a, "format"_a, "cols"_a, "ids"_a,
        "Rows `ids` of a stored weight decoded to float32 into out [len(ids), cols].");
  py::class_<PyLlamaForward>(m, "LlamaForward")
      .def(py::init<const py::dict&, const py::tuple&, py::handle, const py::list&>(), "shape"_a, "embedding"_a,
           "final_norm"_a, "layers"_a)
      .def("run", &PyLlamaForward::run, "hidden_out"_a, "input_ids"_a, "positions"_a, "slot_mapping"_a,
           "num_decode"_a, "decode_block_tables"_a, "decode_seq_lens"_a, "prefill_block_tables"_a,
           "prefill_seq_lens"_a, "query_start_loc"_a, "num_layers"_a, "scale"_a, "num_threads"_a,
           "embedding_rows"_a = py::none(), "embeddings"_a = py::none(),
           "hidden_out = the decoder's final hidden states; rows embedding_rows take embeddings [R, hidden] as "
           "their input instead of their token's embedding.")
      .def_property_readonly("vocab_size", &PyLlamaForward::vocab_size)
      .def_property_readonly("packed_bytes", &PyLlamaForward::packed_bytes)
      .def_property_readonly("released_bytes", &PyLlamaForward::released_bytes);
  py::class_<PyPackedInt8Weight>(m, "PackedInt8Weight",
                                 "A q8_0/q4_0/q4_1 weight repacked for the int8-activation matmul (rows in "
                                 "groups of 8); release_stored drops the stored tensor's pages when they are a "
                                 "read-only file mapping (they fault back from the file if read).")
      .def(py::init<py::handle, const std::string&, int64_t, bool>(), "weight"_a, "format"_a, "cols"_a,
           "release_stored"_a = false)
      .def("matmul", &PyPackedInt8Weight::matmul, "out"_a, "x"_a, "bias"_a = py::none(), "num_threads"_a = 1,
           "out[n, rows] = x[n, cols] @ dequantize(weight)^T (+ bias) with x quantized to int8 per 32 columns.")
      .def_property_readonly("rows", &PyPackedInt8Weight::rows)
      .def_property_readonly("cols", &PyPackedInt8Weight::cols)
      .def_property_readonly("nbytes", &PyPackedInt8Weight::nbytes)
      .def_property_readonly("released", &PyPackedInt8Weight::released);
}

}  // namespace llmkit
