// Prefill attention on the CPU with an item's query rows as vector lanes (see attention_impl.h for the
// work items and docs/kernels.md "Prefill attention"). Built once per instruction set.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/attention_common.h"
#include "cpu/vec.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

// Prefill items read one kv head for all their rows (query tokens x that head's query heads), so the
// rows are the vector lanes: queries are transposed once per item into qt [D][kMaxRows], each key's
// scores for every row are D broadcast-FMAs (four keys at a time), the online softmax updates each row
// over the chunk's visible keys, and each row's P.V keeps a block of its accumulator in registers.
// Keys and values are read where they lie (float32 caches) or from the dequantized chunk tile.
constexpr int kRowVecs = (kMaxRows + kVecFloats - 1) / kVecFloats;
constexpr int kKeysAtOnce = 4;

// scores[j][r] = qt[:, r] . key j, for j < count (rows padded to kRowVecs vectors).
template <int DT>
static inline void prefill_scores(const float* qt, const float* keys, int64_t count, float* scores) {
  int64_t j = 0;
  for (; j + kKeysAtOnce <= count; j += kKeysAtOnce) {
    VecF acc[kKeysAtOnce][kRowVecs] = {};
    for (int d = 0; d < DT; ++d) {
      VecF q[kRowVecs];
      for (int v = 0; v < kRowVecs; ++v) q[v] = load_vec(qt + d * kMaxRows + v * kVecFloats);
      for (int k = 0; k < kKeysAtOnce; ++k) {
        const VecF kd = splat(keys[(j + k) * DT + d]);
        for (int v = 0; v < kRowVecs; ++v) acc[k][v] += kd * q[v];
      }
    }
    for (int k = 0; k < kKeysAtOnce; ++k)
      for (int v = 0; v < kRowVecs; ++v) store_vec(scores + (j + k) * kMaxRows + v * kVecFloats, acc[k][v]);
  }
  for (; j < count; ++j) {
    VecF acc[kRowVecs] = {};
    for (int d = 0; d < DT; ++d) {
      const VecF kd = splat(keys[j * DT + d]);
      for (int v = 0; v < kRowVecs; ++v) acc[v] += kd * load_vec(qt + d * kMaxRows + v * kVecFloats);
    }
    for (int v = 0; v < kRowVecs; ++v) store_vec(scores + j * kMaxRows + v * kVecFloats, acc[v]);
  }
}

// acc[r] = acc[r] * alpha[r] + sum_j p[j][r] * value j, for rows r < rows, a register block at a time.
template <int DT>
static inline void prefill_values(const float* p, const float* values, int64_t count, const float* alpha, int rows,
                                  float* acc) {
  constexpr int kVecs = DT / kVecFloats;
  constexpr int kBlock = kVecs < 8 ? kVecs : 8;
  for (int r = 0; r < rows; ++r) {
    float* out = acc + r * kMaxHeadDim;
    for (int b = 0; b < kVecs; b += kBlock) {
      VecF sum[kBlock];
      const VecF scale = splat(alpha[r]);
      for (int v = 0; v < kBlock; ++v) sum[v] = load_vec(out + (b + v) * kVecFloats) * scale;
      for (int64_t j = 0; j < count; ++j) {
        const VecF pj = splat(p[j * kMaxRows + r]);
        const float* value = values + j * DT + b * kVecFloats;
        for (int v = 0; v < kBlock; ++v) sum[v] += pj * load_vec(value + v * kVecFloats);
      }
      for (int v = 0; v < kBlock; ++v) store_vec(out + (b + v) * kVecFloats, sum[v]);
    }
  }
}

// One prefill item over its kv range: s.query holds its scaled rows; m, l, s.acc are updated.
template <KvFormat F, int DT>
static void attend_prefill_rows(const AttentionArgs& a, const AttentionItem& it, int rows, const int64_t* visible,
                                float* m, float* l, Scratch& s) {
  const CacheView& c = a.cache;
  const int64_t bs = c.block_size;
  float* qt = s.key;  // [DT][kMaxRows], padding rows zero
  for (int d = 0; d < DT; ++d)
    for (int r = 0; r < kMaxRows; ++r) qt[d * kMaxRows + r] = r < rows ? s.query[r * kMaxHeadDim + d] : 0.0f;
  float* scores = s.scores;  // [count][kMaxRows]
  float alpha[kMaxRows];
  for (int64_t t0 = it.kv_begin; t0 < it.kv_end;) {
    const int64_t offset = t0 % bs;
    int64_t count = bs - offset;
    if (count > kChunkTokens) count = kChunkTokens;
    if (count > it.kv_end - t0) count = it.kv_end - t0;
    const int64_t block = a.block_tables.at(it.seq, t0 / bs);
    const float* keys = read_rows<F>(c, c.key, c.key_scales, block, it.kv_head, offset, count, s.tile);
    prefill_scores<DT>(qt, keys, count, scores);
    for (int r = 0; r < rows; ++r) {  // online softmax of row r over this chunk's visible keys
      const int64_t seen = visible[r] - t0 < count ? visible[r] - t0 : count;
      float chunk_max = kNegativeInfinity;
      for (int64_t j = 0; j < seen; ++j) chunk_max = std::max(chunk_max, scores[j * kMaxRows + r]);
      const float new_max = std::max(chunk_max, m[r]);
      alpha[r] = seen > 0 ? exp_nonpositive(m[r] - new_max) : 1.0f;
      float sum = 0.0f;
      for (int64_t j = 0; j < count; ++j) {
        const float e = j < seen ? exp_nonpositive(scores[j * kMaxRows + r] - new_max) : 0.0f;
        scores[j * kMaxRows + r] = e;
        sum += e;
      }
      if (seen > 0) {
        l[r] = l[r] * alpha[r] + sum;
        m[r] = new_max;
      }
    }
    const float* values = read_rows<F>(c, c.value, c.value_scales, block, it.kv_head, offset, count, s.tile);
    prefill_values<DT>(scores, values, count, alpha, rows, s.acc);
    t0 += count;
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
