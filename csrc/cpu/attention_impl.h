// Paged attention on the CPU (decode and prefill), built once per instruction set.
//
// A work item is (sequence, kv heads, up to kMaxRows query rows of those kv heads, token range); decode
// packs several kv heads into one item because all heads of a block are adjacent in memory. Its rows
// stream the K/V blocks of the range once: scores for a chunk of tokens, an online-softmax update,
// P.V. Quantized and 16-bit caches are dequantized a chunk at a time into an L1 tile (with the block/group
// scale applied), never into a full-precision copy of the cache.
// Decode splits long contexts into partitions run in parallel and merged (split-K) when there are
// too few (sequence, head) items to keep every thread busy.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "cpu/attention_common.h"
#include "cpu/attention_decode.h"
#include "cpu/attention_prefill.h"
#include "cpu/numeric.h"
#include "cpu/thread_pool.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

// Dot product with kLanes independent partial sums (one 512-bit, two 256-bit or four 128-bit vector
// accumulators) reduced as a tree: a serial horizontal sum would dominate the decode loop.
constexpr int kLanes = 16;

template <int DT>
static inline float dot(const float* a, const float* b, int64_t D) {
  const int64_t n = DT ? DT : D;
  const int64_t whole = n - n % kLanes;
  float part[kLanes] = {};
  for (int64_t d = 0; d < whole; d += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) part[l] += a[d + l] * b[d + l];
  }
#pragma omp simd
  for (int l = 0; l < 8; ++l) part[l] += part[l + 8];
#pragma omp simd
  for (int l = 0; l < 4; ++l) part[l] += part[l + 4];
  float s = (part[0] + part[2]) + (part[1] + part[3]);
  for (int64_t d = whole; d < n; ++d) s += a[d] * b[d];
  return s;
}

// Starts loading rows [first, first + count) of one (block, kv head) into cache. Blocks are scattered,
// so the hardware prefetcher restarts at every block; fetching the next chunk early hides that.
template <KvFormat F>
static inline void prefetch_rows(const CacheView& c, const void* storage, int64_t block, int64_t head, int64_t first,
                                 int64_t count) {
  const int64_t row0 = (block * c.num_kv_heads + head) * c.block_size + first;
  const int64_t bits = F == KvFormat::kFloat32 ? 32 : (F == KvFormat::kBFloat16 || F == KvFormat::kFloat16) ? 16
                                                                          : F == KvFormat::kInt4           ? 4
                                                                                                           : 8;
  const char* begin = static_cast<const char*>(storage) + row0 * c.head_dim * bits / 8;
  const int64_t bytes = count * c.head_dim * bits / 8;
  for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(begin + i, 0, 1);
}

template <int DT>
static inline void scale_add(float* acc, float p, const float* v, int64_t D) {
  const int64_t n = DT ? DT : D;
#pragma omp simd
  for (int64_t d = 0; d < n; ++d) acc[d] += p * v[d];
}

template <int DT>
static inline void scale_in_place(float* acc, float alpha, int64_t D) {
  const int64_t n = DT ? DT : D;
#pragma omp simd
  for (int64_t d = 0; d < n; ++d) acc[d] *= alpha;
}

// Scores, softmax update and P.V of rows [r0, r0 + n) (one kv head) for `count` keys starting at t0.
template <int DT>
static inline void attend_chunk(const float* keys, const float* values, int64_t t0, int64_t count, int r0, int n,
                                const int64_t* visible, float* m, float* l, Scratch& s, int64_t D) {
  for (int64_t j = 0; j < count; ++j) {
    const float* k = keys + j * D;
    for (int r = r0; r < r0 + n; ++r) {
      const float score = dot<DT>(s.query + r * kMaxHeadDim, k, D);
      s.scores[r * kChunkTokens + j] = t0 + j < visible[r] ? score : kNegativeInfinity;
    }
  }
  for (int r = r0; r < r0 + n; ++r) {
    float* p = s.scores + r * kChunkTokens;
    float chunk_max = kNegativeInfinity;
    for (int64_t j = 0; j < count; ++j) chunk_max = p[j] > chunk_max ? p[j] : chunk_max;
    if (chunk_max == kNegativeInfinity) {
      for (int64_t j = 0; j < count; ++j) p[j] = 0.0f;
      continue;
    }
    const float new_max = chunk_max > m[r] ? chunk_max : m[r];
    const float alpha = exp_nonpositive(m[r] - new_max);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < count; ++j) {
      p[j] = exp_nonpositive(p[j] - new_max);
      sum += p[j];
    }
    if (alpha != 1.0f) scale_in_place<DT>(s.acc + r * kMaxHeadDim, alpha, D);
    l[r] = l[r] * alpha + sum;
    m[r] = new_max;
  }
  for (int64_t j = 0; j < count; ++j) {
    const float* v = values + j * D;
    for (int r = r0; r < r0 + n; ++r) scale_add<DT>(s.acc + r * kMaxHeadDim, s.scores[r * kChunkTokens + j], v, D);
  }
}

static inline void store_row(const AttentionArgs& a, int64_t token, int64_t head, const float* acc, int64_t D) {
  const int64_t bytes = a.out.dtype == DType::kFloat32 ? 4 : 2;
  char* out = static_cast<char*>(a.out.data) + (token * a.out.token_stride + head * D) * bytes;
  convert_from_float(acc, a.out.dtype, out, D);
}

template <KvFormat F, int DT>
static void run_item(const AttentionArgs& a, const AttentionItem& it, Scratch& s, float* partials) {
  const CacheView& c = a.cache;
  const int64_t D = DT ? DT : c.head_dim;
  const int64_t group = a.query.heads / c.num_kv_heads;
  const int rows = int(it.num_tokens * it.num_kv_heads * it.num_heads);
  const int64_t seq_len = a.seq_lens.at(it.seq);
  const int64_t q_len = a.prefill ? a.query_start_loc.at(it.seq + 1) - a.query_start_loc.at(it.seq) : 1;
  const int64_t first_position = seq_len - q_len + (a.prefill ? it.first_token - a.query_start_loc.at(it.seq) : 0);
  const int64_t query_bytes = a.query.dtype == DType::kFloat32 ? 4 : 2;

  float m[kMaxRows], l[kMaxRows];
  int64_t visible[kMaxRows];
  for (int r = 0; r < rows; ++r) {
    const int64_t element = it.row_token(r) * a.query.token_stride + it.row_head(r, group) * D;
    convert_to_float(static_cast<const char*>(a.query.data) + element * query_bytes, a.query.dtype,
                     s.query + r * kMaxHeadDim, D);
    scale_in_place<DT>(s.query + r * kMaxHeadDim, a.scale, D);
    float* acc = s.acc + r * kMaxHeadDim;  // a local pointer: with -fno-strict-aliasing, s.acc is reread per store
    for (int64_t d = 0; d < D; ++d) acc[d] = 0.0f;
    m[r] = kNegativeInfinity;
    l[r] = 0.0f;
    visible[r] = first_position + (it.row_token(r) - it.first_token) + 1;
  }

  const int64_t bs = c.block_size;
  const int rows_per_kv = int(it.num_heads);
  if (DT > 0 && DT % kVecFloats == 0 && a.prefill && it.num_kv_heads == 1) {
    attend_prefill_rows<F, (DT > 0 ? DT : kVecFloats)>(a, it, rows, visible, m, l, s);
  } else {
    for (int64_t t0 = it.kv_begin; t0 < it.kv_end;) {
      const int64_t offset = t0 % bs;
      int64_t count = bs - offset;
      if (count > kChunkTokens) count = kChunkTokens;
      if (count > it.kv_end - t0) count = it.kv_end - t0;
      const int64_t block = a.block_tables.at(it.seq, t0 / bs);
      const int64_t ahead = t0 + count + kChunkTokens;  // two chunks ahead
      if (ahead < it.kv_end) {
        const int64_t ahead_block = a.block_tables.at(it.seq, ahead / bs);
        int64_t ahead_count = bs - ahead % bs;
        if (ahead_count > kChunkTokens) ahead_count = kChunkTokens;
        if (ahead_count > it.kv_end - ahead) ahead_count = it.kv_end - ahead;
        for (int64_t k = 0; k < it.num_kv_heads; ++k) {
          prefetch_rows<F>(c, c.key, ahead_block, it.kv_head + k, ahead % bs, ahead_count);
          prefetch_rows<F>(c, c.value, ahead_block, it.kv_head + k, ahead % bs, ahead_count);
        }
      }
      for (int64_t k = 0; k < it.num_kv_heads; ++k) {
        const int64_t kv_head = it.kv_head + k;
        const float* keys = read_rows<F>(c, c.key, c.key_scales, block, kv_head, offset, count, s.key);
        const float* values = read_rows<F>(c, c.value, c.value_scales, block, kv_head, offset, count, s.value);
        for (int64_t i = 0; i < it.num_tokens; ++i) {
          const int r0 = int((i * it.num_kv_heads + k) * it.num_heads);
          if constexpr (DT > 0 && DT % kVecFloats == 0) {
            attend_chunk_decode<DT>(keys, values, t0, count, r0, rows_per_kv, visible, m, l, s);
          } else {
            attend_chunk<DT>(keys, values, t0, count, r0, rows_per_kv, visible, m, l, s, D);
          }
        }
      }
      t0 += count;
    }
  }

  for (int r = 0; r < rows; ++r) {
    float* acc = s.acc + r * kMaxHeadDim;
    if (it.partial >= 0) {
      float* slot = partials + (it.partial * kMaxRows + r) * (kMaxHeadDim + 2);
      slot[0] = m[r];
      slot[1] = l[r];
      for (int64_t d = 0; d < D; ++d) slot[2 + d] = acc[d];
      continue;
    }
    scale_in_place<DT>(acc, l[r] > 0.0f ? 1.0f / l[r] : 0.0f, D);
    store_row(a, it.row_token(r), it.row_head(r, group), acc, D);
  }
}

// Merges the partitions [first, first + count) of one split decode item group into `out`.
static void merge_partials(const AttentionArgs& a, const AttentionItem& item, const float* partials, int64_t first,
                           int64_t count, float* acc) {
  const int64_t D = a.cache.head_dim;
  const int64_t group = a.query.heads / a.cache.num_kv_heads;
  const int rows = int(item.num_kv_heads * item.num_heads);
  for (int r = 0; r < rows; ++r) {
    float global_max = kNegativeInfinity;
    for (int64_t p = 0; p < count; ++p) {
      const float mp = partials[((first + p) * kMaxRows + r) * (kMaxHeadDim + 2)];
      global_max = mp > global_max ? mp : global_max;
    }
    float total = 0.0f;
    for (int64_t d = 0; d < D; ++d) acc[d] = 0.0f;
    for (int64_t p = 0; p < count; ++p) {
      const float* slot = partials + ((first + p) * kMaxRows + r) * (kMaxHeadDim + 2);
      if (slot[0] == kNegativeInfinity) continue;
      const float w = exp_nonpositive(slot[0] - global_max);
      total += slot[1] * w;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) acc[d] += slot[2 + d] * w;
    }
    const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
    for (int64_t d = 0; d < D; ++d) acc[d] *= inverse;
    store_row(a, item.seq, item.row_head(r, group), acc, D);
  }
}

// Splits the work into items. Decode rows are the query heads of as many kv heads as fit in kMaxRows (all
// heads of a block are adjacent in memory, so one pass reads them together); long contexts are cut into
// split-K partitions when asked or when there are too few items for the threads. Prefill rows are
// query-token tiles times one kv head's query heads.
static AttentionItem* plan_items(const AttentionArgs& a, int num_threads, int64_t* num_items, int64_t* num_partials) {
  const int64_t kv_heads = a.cache.num_kv_heads;
  const int64_t group = a.query.heads / kv_heads;
  const int64_t head_chunks = (group + kMaxRows - 1) / kMaxRows;
  const int64_t heads_per_chunk = group < kMaxRows ? group : kMaxRows;
  int64_t kv_per_item = group <= kMaxRows ? kMaxRows / group : 1;
  if (kv_per_item > kv_heads) kv_per_item = kv_heads;
  const int64_t kv_items = (kv_heads + kv_per_item - 1) / kv_per_item;
  const int64_t bs = a.cache.block_size;
  const int64_t partition = kPartitionTokens > bs ? (kPartitionTokens / bs) * bs : bs;
  bool split = false;
  if (!a.prefill) {
    const int64_t base_items = a.batch * kv_items * head_chunks;
    split = a.split == 1 || (a.split == -1 && a.max_seq_len > partition && base_items < 2 * int64_t(num_threads));
  }
  const int64_t tile = kMaxRows / heads_per_chunk;  // prefill query tokens per item
  int64_t total = 0;
  for (int64_t b = 0; b < a.batch; ++b) {
    if (a.prefill) {
      const int64_t q_len = a.query_start_loc.at(b + 1) - a.query_start_loc.at(b);
      total += kv_heads * head_chunks * ((q_len + tile - 1) / tile);
    } else {
      total += kv_items * head_chunks * (split ? (a.seq_lens.at(b) + partition - 1) / partition : 1);
    }
  }
  auto* items = static_cast<AttentionItem*>(std::malloc(sizeof(AttentionItem) * (total > 0 ? total : 1)));
  int64_t n = 0, partials = 0;
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t len = a.seq_lens.at(b);
    for (int64_t chunk = 0; chunk < head_chunks; ++chunk) {
      const int64_t first_head = chunk * kMaxRows;
      const int64_t heads = group - first_head < kMaxRows ? group - first_head : kMaxRows;
      if (a.prefill) {
        const int64_t start = a.query_start_loc.at(b), stop = a.query_start_loc.at(b + 1);
        for (int64_t h = 0; h < kv_heads; ++h) {
          for (int64_t t = start; t < stop; t += tile) {
            const int64_t tokens = stop - t < tile ? stop - t : tile;
            const int64_t last_visible = len - (stop - (t + tokens));  // keys the tile's last token sees
            items[n++] = {b, h, 1, first_head, heads, t, tokens, 0, last_visible, -1};
          }
        }
        continue;
      }
      for (int64_t h = 0; h < kv_heads; h += kv_per_item) {
        const int64_t span = kv_heads - h < kv_per_item ? kv_heads - h : kv_per_item;
        if (!split) {
          items[n++] = {b, h, span, first_head, heads, b, 1, 0, len, -1};
          continue;
        }
        for (int64_t begin = 0; begin < len; begin += partition) {
          const int64_t end = begin + partition < len ? begin + partition : len;
          items[n++] = {b, h, span, first_head, heads, b, 1, begin, end, partials++};
        }
      }
    }
  }
  *num_items = n;
  *num_partials = partials;
  return items;
}

static inline bool same_rows(const AttentionItem& x, const AttentionItem& y) {
  return x.seq == y.seq && x.kv_head == y.kv_head && x.first_head == y.first_head;
}

template <KvFormat F, int DT>
static void attention_for(const AttentionArgs& a, int num_threads) {
  int64_t num_items = 0, num_partials = 0;
  AttentionItem* items = plan_items(a, num_threads, &num_items, &num_partials);
  float* partials = num_partials > 0 ? static_cast<float*>(std::malloc(sizeof(float) * num_partials * kMaxRows *
                                                                       (kMaxHeadDim + 2)))
                                     : nullptr;
  const int threads = num_items > 1 ? num_threads : 1;
  cpu::parallel_for_dynamic(num_items, threads, [&](int64_t i) {
    thread_local Scratch scratch;
    run_item<F, DT>(a, items[i], scratch, partials);
  });
  if (num_partials > 0) {
    // The partitions of one row set are consecutive items; the first of each run merges them.
    cpu::parallel_for_dynamic(num_items, threads, [&](int64_t i) {
      if (i > 0 && same_rows(items[i - 1], items[i])) return;
      thread_local Scratch scratch;
      int64_t count = 1;
      while (i + count < num_items && same_rows(items[i + count], items[i])) ++count;
      merge_partials(a, items[i], partials, items[i].partial, count, scratch.acc);
    });
  }
  std::free(partials);
  std::free(items);
}

template <KvFormat F>
static void attention_format(const AttentionArgs& a, int num_threads) {
  if (a.cache.head_dim == 64) attention_for<F, 64>(a, num_threads);
  else if (a.cache.head_dim == 128) attention_for<F, 128>(a, num_threads);
  else attention_for<F, 0>(a, num_threads);
}

static void attention(const AttentionArgs& a, int num_threads) {
  switch (a.cache.format) {
    case KvFormat::kFloat32: attention_format<KvFormat::kFloat32>(a, num_threads); break;
    case KvFormat::kBFloat16: attention_format<KvFormat::kBFloat16>(a, num_threads); break;
    case KvFormat::kFloat16: attention_format<KvFormat::kFloat16>(a, num_threads); break;
    case KvFormat::kFp8E4M3: attention_format<KvFormat::kFp8E4M3>(a, num_threads); break;
    case KvFormat::kInt8: attention_format<KvFormat::kInt8>(a, num_threads); break;
    case KvFormat::kInt4: attention_format<KvFormat::kInt4>(a, num_threads); break;
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
