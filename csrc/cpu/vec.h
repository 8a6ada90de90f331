// The native float vector of one instruction-set build (GCC vector extensions): 16 lanes with AVX-512,
// 8 with AVX2, 4 otherwise; loads, broadcast and horizontal sum. Included inside LLMKIT_CPU_ISA.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
