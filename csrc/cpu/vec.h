// The native float vector of one instruction-set build (GCC vector extensions): 16 lanes with AVX-512,
// 8 with AVX2, 4 otherwise; loads, broadcast and horizontal sum. Included inside LLMKIT_CPU_ISA.
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/numeric.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

#if defined(__AVX512F__)
constexpr int kVecFloats = 16;
#elif defined(__AVX2__)
constexpr int kVecFloats = 8;
#else
constexpr int kVecFloats = 4;
#endif
typedef float VecF __attribute__((vector_size(kVecFloats * 4)));
typedef float VecFU __attribute__((vector_size(kVecFloats * 4), aligned(4)));  // unaligned loads
typedef int32_t VecI __attribute__((vector_size(kVecFloats * 4)));                 // lane masks, exponents

static inline VecF load_vec(const float* p) { return *reinterpret_cast<const VecFU*>(p); }
static inline void store_vec(float* p, VecF v) { *reinterpret_cast<VecFU*>(p) = v; }

static inline VecF splat(float v) {
#if defined(__AVX512F__)
  return _mm512_set1_ps(v);
#elif defined(__AVX2__)
  return _mm256_set1_ps(v);
#elif defined(__SSE__)
  return _mm_set1_ps(v);
#else
  VecF out;  // element-wise: compilers do not always turn this into a broadcast
  for (int i = 0; i < kVecFloats; ++i) out[i] = v;
  return out;
#endif
}

static inline float hsum(VecF v) {
  float s = 0.0f;
  for (int i = 0; i < kVecFloats; ++i) s += v[i];
  return s;
}

static inline VecF max_vec(VecF a, VecF b) { return a > b ? a : b; }

// exp_nonpositive (numeric.h) lane by lane, with the same reduction, polynomial and rounding; 0 below
// -87 and for NaN lanes (a lane a caller masks out may hold -inf - -inf).
static inline VecF exp_nonpositive(VecF x) {
  const VecF low = splat(-87.0f);
  const VecF clamped = x > low ? x : low;
  const VecF magic = splat(12582912.0f);  // round half to even, as round_even
  const VecF k = (clamped * splat(1.44269504088896341f) + magic) - magic;
  VecF r = clamped - k * splat(0.693145751953125f);
  r = r - k * splat(1.428606765330187045e-06f);
  VecF p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  const VecF e = p * r * r + r + splat(1.0f);
  const VecF two_k = reinterpret_cast<VecF>((__builtin_convertvector(k, VecI) + 127) << 23);
  return x >= low ? e * two_k : splat(0.0f);
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
