// What the CPU attention kernels share, built once per instruction set: work items, per-thread scratch,
// and reading a chunk of cached rows as float32 (see attention_impl.h).
#pragma once

#include <cstdint>
#include <cstdlib>

#include "cpu/numeric.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

constexpr int kMaxRows = 16;
constexpr int64_t kMaxHeadDim = kCpuMaxHeadDim;
constexpr int64_t kChunkTokens = 32;
constexpr int64_t kPartitionTokens = 512;
constexpr float kNegativeInfinity = -__builtin_inff();

struct AttentionItem {
  int64_t seq;
  int64_t kv_head;       // first kv head of the rows
  int64_t num_kv_heads;  // kv heads the rows span (decode packs several small GQA groups in one item)
  int64_t first_head;    // first query head within each kv head's group
  int64_t num_heads;     // query heads per kv head
  int64_t first_token;   // first query row (decode: the sequence index)
  int64_t num_tokens;    // query tokens
  int64_t kv_begin;      // token range of the cache this item reads
  int64_t kv_end;
  int64_t partial;       // -1: write `out`; else first slot in the split-K partial buffer

  // Rows are ordered (query token, kv head, query head): row r belongs to these.
  int64_t row_token(int r) const { return first_token + r / (num_kv_heads * num_heads); }
  int64_t row_kv_head(int r) const { return kv_head + (r / num_heads) % num_kv_heads; }
  int64_t row_head(int r, int64_t group) const { return row_kv_head(r) * group + first_head + r % num_heads; }
};

struct Scratch {
  float* query;   // [kMaxRows][kMaxHeadDim], scaled
  float* acc;     // [kMaxRows][kMaxHeadDim]
  float* key;     // [kChunkTokens][kMaxHeadDim]
  float* value;   // [kChunkTokens][kMaxHeadDim]
  float* scores;  // [kMaxRows][kChunkTokens]
  float* tile;    // [kChunkTokens][kMaxHeadDim]: a prefill chunk's dequantized keys, then values
  void* memory;

  Scratch() {
    const size_t floats = 2 * kMaxRows * kMaxHeadDim + 3 * kChunkTokens * kMaxHeadDim + kMaxRows * kChunkTokens;
    memory = std::aligned_alloc(64, floats * sizeof(float));
    query = static_cast<float*>(memory);
    acc = query + kMaxRows * kMaxHeadDim;
    key = acc + kMaxRows * kMaxHeadDim;
    value = key + kChunkTokens * kMaxHeadDim;
    scores = value + kChunkTokens * kMaxHeadDim;
    tile = scores + kMaxRows * kChunkTokens;
  }
  ~Scratch() { std::free(memory); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Rows [first, first + count) of one (block, kv head) as float32: the cache itself for float32
// caches, else dequantized into `tile`.
template <KvFormat F>
static inline const float* read_rows(const CacheView& c, const void* storage, const void* scales, int64_t block,
                                     int64_t head, int64_t first, int64_t count, float* tile) {
  const int64_t D = c.head_dim;
  const int64_t row0 = (block * c.num_kv_heads + head) * c.block_size + first;
  const int64_t n = count * D;
  if constexpr (F == KvFormat::kFloat32) {
    return static_cast<const float*>(storage) + row0 * D;
  } else if constexpr (F == KvFormat::kBFloat16) {
    const uint16_t* src = static_cast<const uint16_t*>(storage) + row0 * D;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) tile[i] = bf16_to_float(src[i]);
  } else if constexpr (F == KvFormat::kFloat16) {
    const uint16_t* src = static_cast<const uint16_t*>(storage) + row0 * D;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) tile[i] = half_to_float(src[i]);
  } else if constexpr (F == KvFormat::kFp8E4M3) {
    const uint8_t* src = static_cast<const uint8_t*>(storage) + row0 * D;
    const float s = static_cast<const float*>(scales)[block * c.num_kv_heads + head];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) tile[i] = fp8_e4m3_to_float(src[i]) * s;
  } else if constexpr (F == KvFormat::kInt8) {
    const int8_t* src = static_cast<const int8_t*>(storage) + row0 * D;
    const float s = static_cast<const float*>(scales)[block * c.num_kv_heads + head];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) tile[i] = float(src[i]) * s;
  } else {
    const uint8_t* src = static_cast<const uint8_t*>(storage) + row0 * (D / 2);
    const uint16_t* group_scales = static_cast<const uint16_t*>(scales) + row0 * (D / kInt4Group);
    const int64_t groups = count * (D / kInt4Group);
    for (int64_t g = 0; g < groups; ++g) {
      const float s = half_to_float(group_scales[g]);
      const uint8_t* packed = src + g * (kInt4Group / 2);
      float* dst = tile + g * kInt4Group;
#pragma omp simd
      for (int e = 0; e < kInt4Group; ++e) {
        const uint8_t byte = packed[e >> 1];
        const int nibble = (e & 1) ? (byte >> 4) : (byte & 0x0f);
        dst[e] = float(nibble - 8) * s;
      }
    }
  }
  return tile;
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
