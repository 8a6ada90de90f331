// Plain argument structs shared by the Python binding layer and the CPU/CUDA kernels.
// Everything here is validated before a kernel sees it: shapes agree, pointers are non-null
// where used, and (on CPU) every block id and slot a kernel will touch is in range.
#pragma once

#include <cstdint>

namespace llmkit {

enum class DType : int32_t { kFloat32, kBFloat16, kFloat16, kUInt8, kInt8, kInt32, kInt64 };

// Storage formats of a paged KV cache (see llmkit/core/ops/kv_layout.py).
enum class KvFormat : int32_t { kFloat32, kBFloat16, kFloat16, kFp8E4M3, kInt8, kInt4 };

inline bool has_block_scales(KvFormat f) { return f == KvFormat::kFp8E4M3 || f == KvFormat::kInt8; }

constexpr int kInt4Group = 32;
constexpr float kFp8Max = 448.0f;
constexpr float kInt8Max = 127.0f;
constexpr float kInt4Max = 7.0f;
// The CPU kernels keep one head vector per row in fixed-size L1 buffers.
constexpr int64_t kCpuMaxHeadDim = 256;

// Error bits the CUDA kernels raise when a value they read is out of range (see cuda/launch.h).
enum CudaErrorBits : uint32_t {
  kBadBlockTable = 1u,
  kBadSeqLen = 2u,
  kBadSlot = 4u,
  kBadQueryStartLoc = 8u,
  kBadIndex = 16u,
};

// An int32 or int64 index vector (or matrix rows) read element by element.
struct IndexView {
  const void* data = nullptr;
  bool wide = false;     // int64 when true, int32 otherwise
  int64_t row_stride = 0;  // elements between rows, for 2-D index tensors (block tables)

  inline int64_t at(int64_t i) const {
    return wide ? static_cast<const int64_t*>(data)[i] : static_cast<const int32_t*>(data)[i];
  }
  inline int64_t at(int64_t row, int64_t col) const { return at(row * row_stride + col); }
};

// One layer's K and V block pools: [num_blocks, num_kv_heads, block_size, head_dim] (int4: head_dim / 2 bytes).
struct CacheView {
  KvFormat format = KvFormat::kFloat32;
  void* key = nullptr;
  void* value = nullptr;
  void* key_scales = nullptr;    // fp8/int8: float [num_blocks, heads]; int4: half [num_blocks, heads, block_size, head_dim/32]
  void* value_scales = nullptr;
  int64_t num_blocks = 0;
  int64_t num_kv_heads = 0;
  int64_t block_size = 0;
  int64_t head_dim = 0;  // logical elements per head vector
};

// A [tokens, heads, head_dim] activation whose last two dims are compact; dim 0 may be strided.
struct TokenMatrix {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t token_stride = 0;  // elements
};

struct AttentionArgs {
  TokenMatrix out;
  TokenMatrix query;
  CacheView cache;
  IndexView block_tables;  // [batch, max_blocks]
  int64_t max_blocks = 0;
  IndexView seq_lens;      // [batch]
  IndexView query_start_loc;  // prefill only: [batch + 1]
  int64_t batch = 0;
  int64_t max_seq_len = 0;    // host-known upper bound of seq_lens (CPU: exact max)
  float scale = 1.0f;
  bool prefill = false;
  int split = -1;  // decode split-K: -1 automatic, 0 never, 1 always
};

struct CacheWriteArgs {
  TokenMatrix key;
  TokenMatrix value;
  CacheView cache;
  IndexView slot_mapping;  // [tokens]
};

// Whole-block quantization: x [num_blocks, heads, block_size, head_dim] <-> (storage, scales).
struct QuantizeArgs {
  void* values = nullptr;  // quantize: input (any float dtype); dequantize: float32 output
  DType values_dtype = DType::kFloat32;
  void* storage = nullptr;
  void* scales = nullptr;
  KvFormat format = KvFormat::kInt8;
  int64_t num_blocks = 0;
  int64_t heads = 0;
  int64_t block_size = 0;
  int64_t head_dim = 0;
};

struct BitmaskArgs {
  void* logits = nullptr;
  DType logits_dtype = DType::kFloat32;
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t logits_row_stride = 0;
  const int32_t* bitmask = nullptr;
  int64_t bitmask_row_stride = 0;
  IndexView indices;  // rows to mask; data == nullptr means every row
  int64_t num_indices = 0;
};

// Weight storage formats of quantized matmuls: GGUF's block layouts, rows stored back to back
// (row r is cols / block_elems blocks starting at byte r * row_bytes). See llmkit/core/quant/formats.py.
enum class WeightFormat : int32_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ4_K, kQ5_K, kQ6_K };

// out[n, rows] = x[n, cols] @ dequantize(weight)[rows, cols]^T (+ bias[rows]); float32 activations.
// cols is a multiple of the format's block size; row_bytes = cols / block_elems * block_bytes.
struct QuantMatmulArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;  // elements between token rows of x
  const void* weight = nullptr;
  WeightFormat format = WeightFormat::kF32;
  int64_t row_bytes = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t n = 0;  // tokens
  float* out = nullptr;
  int64_t out_stride = 0;  // elements between token rows of out
  const float* bias = nullptr;  // optional [rows]
  // CPU only: quantize x to int8 per 32 columns (llama.cpp's Q8 activations) and multiply in integers.
  // Applies to Q8_0 / Q4_0 / Q4_1 weights; other formats always use float32 activations.
  bool int8_activations = false;
  // Optional: x already quantized by the kernel table's quantize_q8 (q [n, cols], per 32 columns the
  // scale d and d * sum(q)); a caller running several matmuls on one x quantizes it once.
  const int8_t* x_q8 = nullptr;
  const float* x_q8_scale = nullptr;
  const float* x_q8_sum = nullptr;
};

}  // namespace llmkit
