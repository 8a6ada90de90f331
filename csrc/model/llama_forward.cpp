#include "model/llama_forward.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <vector>

#include "cpu/cache_write.h"
#include "cpu/kernel_table.h"
#include "cpu/thread_pool.h"

namespace llmkit {

namespace {

// Regions smaller than this run on the calling thread (LLMKIT_MIN_PARALLEL_MACS overrides, for measurements).
static const int64_t kMinParallelMacs = std::getenv("LLMKIT_MIN_PARALLEL_MACS") ? std::atoll(std::getenv("LLMKIT_MIN_PARALLEL_MACS")) : (int64_t(1) << 15);

// Row ranges start at multiples of 8: quant_matmul_rows wants multiples of 4, int8_packed_rows of 8.
constexpr int64_t kRowGrain = kPackRows;

// One matmul of a region: its arguments and, with int8 activations, its repacked weight (or none).
struct Matmul {
  QuantMatmulArgs args;
  const PackedInt8Weight* packed = nullptr;

  void rows(const cpu::KernelTable& kernels, int64_t begin, int64_t end) const {
    if (packed != nullptr && args.int8_activations) {
      kernels.int8_packed_rows(args, *packed, begin, end);
    } else {
      kernels.quant_matmul_rows(args, begin, end);
    }
  }
};

// Row ranges of one region's matrices: a few per thread, handed out dynamically (see thread_pool.h).
struct RowChunk {
  const Matmul* matmul;
  int64_t begin, end;
};

std::vector<RowChunk> row_chunks(std::initializer_list<const Matmul*> matmuls, int threads) {
  std::vector<RowChunk> chunks;
  for (const Matmul* matmul : matmuls) {
    const QuantMatmulArgs* m = &matmul->args;
    const int64_t units = (m->rows + kRowGrain - 1) / kRowGrain;
    const int64_t pieces = threads <= 1 ? 1 : (units < 4 * int64_t(threads) ? units : 4 * int64_t(threads));
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t begin = units * p / pieces * kRowGrain;
      const int64_t end = units * (p + 1) / pieces * kRowGrain;
      if (begin < end) chunks.push_back({matmul, begin, end < m->rows ? end : m->rows});
    }
  }
  return chunks;
}

void run_matmuls(std::initializer_list<const Matmul*> matmuls, int threads) {
  const std::vector<RowChunk> chunks = row_chunks(matmuls, threads);
  const cpu::KernelTable& kernels = cpu::active_table();
  cpu::parallel_for_dynamic(int64_t(chunks.size()), threads, [&](int64_t i) {
    chunks[size_t(i)].matmul->rows(kernels, chunks[size_t(i)].begin, chunks[size_t(i)].end);
  });
}

Matmul matmul_args(const WeightView& w, const float* x, int64_t x_stride, int64_t n, float* out, int64_t out_stride,
                   const float* bias, bool int8_activations = false) {
  Matmul m;
  m.packed = w.packed;
  QuantMatmulArgs& a = m.args;
  a.int8_activations = int8_activations;
  a.x = x;
  a.x_stride = x_stride;
  a.weight = w.data;
  a.format = w.format;
  a.row_bytes = w.row_bytes;
  a.rows = w.rows;
  a.cols = w.cols;
  a.n = n;
  a.out = out;
  a.out_stride = out_stride;
  a.bias = bias;
  return m;
}

// Threads for a region of `macs` multiply-adds: one when the work is too small to share.
int region_threads(int64_t macs, int num_threads) { return macs < kMinParallelMacs ? 1 : num_threads; }

// Element-wise work over token rows (norms, RoPE, activation quantization, residuals) runs in token
// ranges on every thread once a step has this many rows; a decode step's few rows stay on the caller.
constexpr int64_t kMinParallelTokens = 64;
constexpr int64_t kTokenGrain = 16;

template <class Fn>
void for_token_ranges(int64_t tokens, int num_threads, Fn&& fn) {
  cpu::parallel_for_ranges(tokens, kTokenGrain, tokens < kMinParallelTokens ? 1 : num_threads, fn);
}

void rms_norm(const float* x, const float* weight, int64_t tokens, int64_t hidden, float eps, float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = x + t * hidden;
    float sum = 0.0f;
    for (int64_t i = 0; i < hidden; ++i) sum += row[i] * row[i];
    const float inv = 1.0f / std::sqrt(sum / float(hidden) + eps);
    float* dst = out + t * hidden;
    for (int64_t i = 0; i < hidden; ++i) dst[i] = weight[i] * (row[i] * inv);
  }
}

void add_into(float* x, const float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] += y[i];
}

void rms_norm_rows(const float* x, const float* weight, int64_t tokens, int64_t hidden, float eps, float* out,
                   int num_threads) {
  for_token_ranges(tokens, num_threads, [&](int64_t t0, int64_t t1) {
    rms_norm(x + t0 * hidden, weight, t1 - t0, hidden, eps, out + t0 * hidden);
  });
}

void add_rows(float* x, const float* y, int64_t tokens, int64_t hidden, int num_threads) {
  for_token_ranges(tokens, num_threads,
                   [&](int64_t t0, int64_t t1) { add_into(x + t0 * hidden, y + t0 * hidden, (t1 - t0) * hidden); });
}

// Rotate-half RoPE of one head vector in place.
void rotate(float* v, const float* cos, const float* sin, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    v[i] = a * cos[i] - b * sin[i];
    v[i + half] = b * cos[i + half] + a * sin[i + half];
  }
}

int64_t longest(const IndexView& lens, int64_t count) {
  int64_t best = 0;
  for (int64_t i = 0; i < count; ++i) best = lens.at(i) > best ? lens.at(i) : best;
  return best;
}

template <class T>
T* grown(std::vector<T>& buffer, int64_t size) {
  if (int64_t(buffer.size()) < size) buffer.resize(size_t(size));
  return buffer.data();
}

}  // namespace

LlamaForward::LlamaForward(LlamaShape shape, WeightView embedding, const float* final_norm,
                           std::vector<LayerWeights> layers)
    : shape_(std::move(shape)), embedding_(embedding), final_norm_(final_norm), layers_(std::move(layers)) {
  if (!shape_.int8_activations) return;
  for (LayerWeights& layer : layers_) {
    for (WeightView* w : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      if (!repackable_for_int8(w->format)) continue;
      packed_.push_back(std::make_unique<PackedInt8Buffer>(static_cast<const uint8_t*>(w->data), w->format, w->rows,
                                                           w->cols, shape_.release_stored));
      w->packed = &packed_.back()->view();
      packed_bytes_ += packed_.back()->bytes();
      if (packed_.back()->released()) released_bytes_ += w->rows * w->row_bytes;
    }
  }
}

void LlamaForward::run(const ForwardStep& step) {
  const LlamaShape& s = shape_;
  const int64_t n = step.tokens, hidden = s.hidden, half = s.head_dim / 2;
  if (n == 0) return;
  float* x = grown(x_, n * hidden);
  grown(normed_, n * hidden);
  grown(qkv_, n * (s.heads + 2 * s.kv_heads) * s.head_dim);
  grown(attn_, n * s.heads * s.head_dim);
  grown(gate_up_, n * 2 * s.intermediate);
  grown(act_, n * s.intermediate);
  float* cos = grown(cos_, n * s.head_dim);
  float* sin = grown(sin_, n * s.head_dim);

  Matmul embed = matmul_args(embedding_, nullptr, 0, 0, x, hidden, nullptr);
  if (embedding_.packed != nullptr) {
    // The stored table's pages were released when it was packed: read the rows from the packed copy.
    uint8_t* rows = grown(embed_rows_, n * embedding_.row_bytes);
    int64_t* order = grown(embed_order_, n);
    for (int64_t t = 0; t < n; ++t) {
      unpack_row(*embedding_.packed, step.input_ids[t], rows + t * embedding_.row_bytes);
      order[t] = t;
    }
    embed.args.weight = rows;
    embed.args.rows = n;
    cpu::active_table().dequantize_rows(embed.args, order, n);
  } else {
    cpu::active_table().dequantize_rows(embed.args, step.input_ids, n);
  }
  for (int64_t r = 0; r < step.num_embedded; ++r) {
    const float* src = step.embedded + r * hidden;
    std::copy(src, src + hidden, x + step.embedded_rows[r] * hidden);
  }
  for (int64_t t = 0; t < n; ++t) {
    const float position = float(step.positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = position * s.inv_freq[size_t(i)];
      const float c = std::cos(angle) * s.rope_attention_scaling, si = std::sin(angle) * s.rope_attention_scaling;
      cos[t * s.head_dim + i] = cos[t * s.head_dim + half + i] = c;
      sin[t * s.head_dim + i] = sin[t * s.head_dim + half + i] = si;
    }
  }
  const int64_t layers = step.num_layers < num_layers() ? step.num_layers : num_layers();
  for (int64_t l = 0; l < layers; ++l) layer(layers_[size_t(l)], step);
  rms_norm_rows(x, final_norm_, n, hidden, s.rms_eps, step.hidden_out, step.num_threads);
}

// With int8 activations, quantizes x [n, cols] once into the forward's buffers and points `matmuls` at it.
static void share_q8(bool enabled, const float* x, int64_t n, int64_t cols, std::vector<int8_t>& q,
                     std::vector<float>& scale, std::vector<float>& sum, int num_threads,
                     std::initializer_list<Matmul*> matmuls) {
  if (!enabled) return;
  if (int64_t(q.size()) < n * cols) q.resize(size_t(n * cols));
  if (int64_t(scale.size()) < n * cols / 32) {
    scale.resize(size_t(n * cols / 32));
    sum.resize(size_t(n * cols / 32));
  }
  const cpu::KernelTable& kernels = cpu::active_table();
  for_token_ranges(n, num_threads, [&](int64_t t0, int64_t t1) {
    const int64_t blocks = t0 * cols / 32;
    kernels.quantize_q8(x + t0 * cols, cols, t1 - t0, cols, q.data() + t0 * cols, scale.data() + blocks,
                        sum.data() + blocks);
  });
  for (Matmul* m : matmuls) {
    m->args.x_q8 = q.data();
    m->args.x_q8_scale = scale.data();
    m->args.x_q8_sum = sum.data();
  }
}

void LlamaForward::layer(const LayerWeights& w, const ForwardStep& step) {
  const LlamaShape& s = shape_;
  const cpu::KernelTable& kernels = cpu::active_table();
  const int64_t n = step.tokens, hidden = s.hidden, D = s.head_dim, I = s.intermediate;
  const int64_t q_width = s.heads * D, kv_width = s.kv_heads * D, qkv_width = q_width + 2 * kv_width;
  float *x = x_.data(), *normed = normed_.data(), *qkv = qkv_.data(), *attn = attn_.data();
  float *gate_up = gate_up_.data(), *act = act_.data();

  // Attention block: norm, Q/K/V in one region, RoPE, cache write, attention, O projection + residual.
  rms_norm_rows(x, w.attn_norm, n, hidden, s.rms_eps, normed, step.num_threads);
  Matmul q = matmul_args(w.q, normed, hidden, n, qkv, qkv_width, w.q_bias, s.int8_activations);
  Matmul k = matmul_args(w.k, normed, hidden, n, qkv + q_width, qkv_width, w.k_bias, s.int8_activations);
  Matmul v =
      matmul_args(w.v, normed, hidden, n, qkv + q_width + kv_width, qkv_width, w.v_bias, s.int8_activations);
  share_q8(s.int8_activations, normed, n, hidden, q8_, q8_scale_, q8_sum_, step.num_threads, {&q, &k, &v});
  const int qkv_threads = region_threads(n * hidden * qkv_width, step.num_threads);
  run_matmuls({&q, &k, &v}, qkv_threads);
  for_token_ranges(n, step.num_threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* c = cos_.data() + t * D;
      const float* si = sin_.data() + t * D;
      float* row = qkv + t * qkv_width;
      for (int64_t h = 0; h < s.heads + s.kv_heads; ++h) rotate(row + h * D, c, si, D / 2);
    }
  });
  CacheWriteArgs write;
  write.cache = w.cache;
  write.key = TokenMatrix{qkv + q_width, DType::kFloat32, n, s.kv_heads, qkv_width};
  write.value = TokenMatrix{qkv + q_width + kv_width, DType::kFloat32, n, s.kv_heads, qkv_width};
  write.slot_mapping = step.slot_mapping;
  cpu::write_cache(write, step.num_threads);

  const int64_t d = step.num_decode;
  if (d > 0) {
    AttentionArgs a;
    a.out = TokenMatrix{attn, DType::kFloat32, d, s.heads, q_width};
    a.query = TokenMatrix{qkv, DType::kFloat32, d, s.heads, qkv_width};
    a.cache = w.cache;
    a.block_tables = step.decode_block_tables;
    a.max_blocks = step.decode_max_blocks;
    a.seq_lens = step.decode_seq_lens;
    a.batch = d;
    a.max_seq_len = longest(step.decode_seq_lens, d);
    a.scale = step.attention_scale;
    kernels.attention(a, step.num_threads);
  }
  if (d < n) {
    AttentionArgs a;
    a.out = TokenMatrix{attn + d * q_width, DType::kFloat32, n - d, s.heads, q_width};
    a.query = TokenMatrix{qkv + d * qkv_width, DType::kFloat32, n - d, s.heads, qkv_width};
    a.cache = w.cache;
    a.block_tables = step.prefill_block_tables;
    a.max_blocks = step.prefill_max_blocks;
    a.seq_lens = step.prefill_seq_lens;
    a.query_start_loc = step.query_start_loc;
    a.batch = step.num_prefill;
    a.max_seq_len = longest(step.prefill_seq_lens, step.num_prefill);
    a.scale = step.attention_scale;
    a.prefill = true;
    kernels.attention(a, step.num_threads);
  }
  Matmul o = matmul_args(w.o, attn, q_width, n, normed, hidden, nullptr, s.int8_activations);
  share_q8(s.int8_activations, attn, n, q_width, q8_, q8_scale_, q8_sum_, step.num_threads, {&o});
  const int o_threads = region_threads(n * q_width * hidden, step.num_threads);
  run_matmuls({&o}, o_threads);
  add_rows(x, normed, n, hidden, step.num_threads);

  // MLP block: norm, gate and up in one region with SiLU(gate) * up on each thread's columns, down + residual.
  rms_norm_rows(x, w.ffn_norm, n, hidden, s.rms_eps, normed, step.num_threads);
  Matmul gate = matmul_args(w.gate, normed, hidden, n, gate_up, 2 * I, nullptr, s.int8_activations);
  Matmul up = matmul_args(w.up, normed, hidden, n, gate_up + I, 2 * I, nullptr, s.int8_activations);
  share_q8(s.int8_activations, normed, n, hidden, q8_, q8_scale_, q8_sum_, step.num_threads, {&gate, &up});
  const int mlp_threads = region_threads(n * hidden * 2 * I, step.num_threads);
  const std::vector<RowChunk> mlp_chunks = row_chunks({&gate}, mlp_threads);
  cpu::parallel_for_dynamic(int64_t(mlp_chunks.size()), mlp_threads, [&](int64_t c) {
    const int64_t begin = mlp_chunks[size_t(c)].begin, end = mlp_chunks[size_t(c)].end;
    gate.rows(kernels, begin, end);
    up.rows(kernels, begin, end);
    for (int64_t token = 0; token < n; ++token) {
      const float* g = gate_up + token * 2 * I;
      kernels.silu_mul(g + begin, g + I + begin, act + token * I + begin, end - begin);
    }
  });
  Matmul down = matmul_args(w.down, act, I, n, normed, hidden, nullptr, s.int8_activations);
  share_q8(s.int8_activations, act, n, I, q8_, q8_scale_, q8_sum_, step.num_threads, {&down});
  const int down_threads = region_threads(n * I * hidden, step.num_threads);
  run_matmuls({&down}, down_threads);
  add_rows(x, normed, n, hidden, step.num_threads);
}

}  // namespace llmkit
