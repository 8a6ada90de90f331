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
  const float* query = s.query;
  for (int d = 0; d < DT; ++d)
    for (int r = 0; r < kMaxRows; ++r) qt[d * kMaxRows + r] = r < rows ? query[r * kMaxHeadDim + d] : 0.0f;
  float* scores = s.scores;  // [count][kMaxRows]
  float alpha[kMaxRows];
  for (int r = rows; r < kMaxRows; ++r) {  // padding lanes: never seen, so never updated
    m[r] = kNegativeInfinity;
    l[r] = 0.0f;
  }
  for (int64_t t0 = it.kv_begin; t0 < it.kv_end;) {
    const int64_t offset = t0 % bs;
    int64_t count = bs - offset;
    if (count > kChunkTokens) count = kChunkTokens;
    if (count > it.kv_end - t0) count = it.kv_end - t0;
    const int64_t block = a.block_tables.at(it.seq, t0 / bs);
    const float* keys = read_rows<F>(c, c.key, c.key_scales, block, it.kv_head, offset, count, s.tile);
    prefill_scores<DT>(qt, keys, count, scores);
    // Online softmax of every row over this chunk's visible keys, the rows as lanes: row r sees the
    // chunk's first seen[r] keys (none for padding rows).
    float seen[kMaxRows];
    for (int r = 0; r < kMaxRows; ++r) seen[r] = r < rows ? float(std::clamp<int64_t>(visible[r] - t0, 0, count)) : 0.0f;
    for (int v = 0; v < kRowVecs; ++v) {
      const int lane0 = v * kVecFloats;
      const VecF seen_v = load_vec(seen + lane0);
      VecF chunk_max = splat(kNegativeInfinity);
      for (int64_t j = 0; j < count; ++j) {
        const VecF score = load_vec(scores + j * kMaxRows + lane0);
        chunk_max = splat(float(j)) < seen_v ? max_vec(chunk_max, score) : chunk_max;
      }
      const VecF old_max = load_vec(m + lane0);
      const VecF new_max = max_vec(chunk_max, old_max);
      const auto any_seen = seen_v > splat(0.0f);
      const VecF alpha_v = any_seen ? exp_nonpositive(old_max - new_max) : splat(1.0f);
      VecF sum = splat(0.0f);
      for (int64_t j = 0; j < count; ++j) {
        float* score = scores + j * kMaxRows + lane0;
        const VecF e = splat(float(j)) < seen_v ? exp_nonpositive(load_vec(score) - new_max) : splat(0.0f);
        store_vec(score, e);
        sum += e;
      }
      store_vec(alpha + lane0, alpha_v);
      store_vec(l + lane0, any_seen ? load_vec(l + lane0) * alpha_v + sum : load_vec(l + lane0));
      store_vec(m + lane0, any_seen ? new_max : old_max);
    }
    const float* values = read_rows<F>(c, c.value, c.value_scales, block, it.kv_head, offset, count, s.tile);
    prefill_values<DT>(scores, values, count, alpha, rows, s.acc);
    t0 += count;
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
