// Decode attention's inner loop on the CPU (see attention_impl.h for the work items), built once per
// instruction set: one kv head's chunk of keys against its few query rows (a GQA group: 1-16 rows of
// one token), a row at a time with its state in registers.
//
// Scores take four keys at once (four independent FMA chains over D, reduced together by horizontal
// adds); the online-softmax update runs over the whole chunk as vectors (keys past the chunk or not
// visible are -inf lanes, which exp_nonpositive turns into 0); P.V keeps the row's accumulator in
// registers across the chunk instead of reloading it for every key.
#pragma once

#include <cstdint>

#include "cpu/attention_common.h"
#include "cpu/vec.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

// (sum of a's lanes, b's, c's, d's) into out[0..3].
static inline void hsum4(VecF a, VecF b, VecF c, VecF d, float* out) {
#if defined(__AVX512F__)
  typedef float Vec8 __attribute__((vector_size(32)));
  const auto halves = [](VecF x) {  // lanes 0-7 + lanes 8-15 (the intrinsics warn falsely in GCC 12)
    const Vec8 low = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7);
    const Vec8 high = __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    return __m256(low + high);
  };
  const __m256 a8 = halves(a), b8 = halves(b), c8 = halves(c), d8 = halves(d);
#elif defined(__AVX2__)
  const __m256 a8 = a, b8 = b, c8 = c, d8 = d;
#endif
#if defined(__AVX2__)
  const __m256 ab = _mm256_hadd_ps(a8, b8);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(c8, d8);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
#else
  out[0] = hsum(a);
  out[1] = hsum(b);
  out[2] = hsum(c);
  out[3] = hsum(d);
#endif
}

static inline float hmax(VecF v) {
  float m = v[0];
  for (int i = 1; i < kVecFloats; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// Rows [r0, r0 + n) (query heads of one kv head, one token) over `count` keys from position t0:
// online-softmax state m, l and the accumulators in s.acc are updated. DT is a multiple of kVecFloats.
template <int DT>
static inline void attend_chunk_decode(const float* keys, const float* values, int64_t t0, int64_t count, int r0,
                                       int n, const int64_t* visible, float* m, float* l, Scratch& s) {
  constexpr int kVecs = DT / kVecFloats;
  constexpr int kScoreVecs = int(kChunkTokens) / kVecFloats;
  for (int r = r0; r < r0 + n; ++r) {
    const float* q = s.query + r * kMaxHeadDim;
    float* p = s.scores + r * kChunkTokens;
    int64_t j = 0;
    for (; j + 4 <= count; j += 4) {
      VecF acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      const float* k = keys + j * DT;
      for (int v = 0; v < kVecs; ++v) {
        const VecF qv = load_vec(q + v * kVecFloats);
        acc0 += qv * load_vec(k + v * kVecFloats);
        acc1 += qv * load_vec(k + DT + v * kVecFloats);
        acc2 += qv * load_vec(k + 2 * DT + v * kVecFloats);
        acc3 += qv * load_vec(k + 3 * DT + v * kVecFloats);
      }
      hsum4(acc0, acc1, acc2, acc3, p + j);
    }
    for (; j < count; ++j) {
      VecF acc = {};
      for (int v = 0; v < kVecs; ++v) acc += load_vec(q + v * kVecFloats) * load_vec(keys + j * DT + v * kVecFloats);
      p[j] = hsum(acc);
    }
    int64_t seen = visible[r] - t0;  // keys of the chunk this row may attend to
    if (seen > count) seen = count;
    for (j = seen > 0 ? seen : 0; j < kChunkTokens; ++j) p[j] = kNegativeInfinity;

    VecF chunk_max_v = load_vec(p);
    for (int v = 1; v < kScoreVecs; ++v) chunk_max_v = max_vec(chunk_max_v, load_vec(p + v * kVecFloats));
    const float chunk_max = hmax(chunk_max_v);
    if (chunk_max == kNegativeInfinity) continue;  // nothing visible: the row's state stays as it is
    const float new_max = chunk_max > m[r] ? chunk_max : m[r];
    const float alpha = exp_nonpositive(m[r] - new_max);
    VecF sum = {};
    for (int v = 0; v < kScoreVecs; ++v) {
      const VecF e = exp_nonpositive(load_vec(p + v * kVecFloats) - splat(new_max));
      store_vec(p + v * kVecFloats, e);
      sum += e;
    }
    l[r] = l[r] * alpha + hsum(sum);
    m[r] = new_max;

    float* out = s.acc + r * kMaxHeadDim;
    constexpr int kBlock = kVecs < 8 ? kVecs : 8;  // accumulators held in registers at once
    for (int b = 0; b < kVecs; b += kBlock) {
      VecF acc[kBlock];
      for (int v = 0; v < kBlock; ++v) acc[v] = load_vec(out + (b + v) * kVecFloats) * splat(alpha);
      for (int64_t i = 0; i < count; ++i) {
        const VecF pi = splat(p[i]);
        const float* value = values + i * DT + b * kVecFloats;
        for (int v = 0; v < kBlock; ++v) acc[v] += pi * load_vec(value + v * kVecFloats);
      }
      for (int v = 0; v < kBlock; ++v) store_vec(out + (b + v) * kVecFloats, acc[v]);
    }
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
