// Token-bitmask application on the CPU: bit j of word w allows token 32 * w + j; others become -inf.
#pragma once

#include "cpu/thread_pool.h"

#include <cstdint>

#include "cpu/numeric.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

template <typename T>
static inline void mask_row(T* logits, const int32_t* words, int64_t vocab, T negative_infinity) {
  const int64_t full_words = vocab / 32;
  for (int64_t w = 0; w < full_words; ++w) {
    const uint32_t bits = uint32_t(words[w]);
    if (bits == 0xffffffffu) continue;
    T* chunk = logits + w * 32;
#pragma omp simd
    for (int j = 0; j < 32; ++j) {
      if (((bits >> j) & 1u) == 0) chunk[j] = negative_infinity;
    }
  }
  const uint32_t tail_bits = full_words * 32 < vocab ? uint32_t(words[full_words]) : 0xffffffffu;
  for (int64_t v = full_words * 32; v < vocab; ++v) {
    if (((tail_bits >> (v - full_words * 32)) & 1u) == 0) logits[v] = negative_infinity;
  }
}

static void apply_bitmask(const BitmaskArgs& a, int num_threads) {
  const int64_t rows = a.indices.data ? a.num_indices : a.rows;
  const int threads = rows * a.vocab > (1 << 17) ? num_threads : 1;
  cpu::parallel_for_ranges(rows, 1, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      int64_t row = a.indices.data ? a.indices.at(i) : i;
      if (row < 0) row += a.rows;
      const int32_t* words = a.bitmask + row * a.bitmask_row_stride;
      if (a.logits_dtype == DType::kFloat32) {
        float* logits = static_cast<float*>(a.logits) + row * a.logits_row_stride;
        mask_row<float>(logits, words, a.vocab, -__builtin_inff());
      } else {
        uint16_t* logits = static_cast<uint16_t*>(a.logits) + row * a.logits_row_stride;
        mask_row<uint16_t>(logits, words, a.vocab, a.logits_dtype == DType::kBFloat16 ? 0xff80 : 0xfc00);
      }
    }
  });
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
