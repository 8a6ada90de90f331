// GGUF weight blocks decoded to float32: the layouts of llama.cpp's ggml-quants (see
// llmkit/core/quant/reference.py, the specification these loops must match value for value).
// Compiled once per instruction set (see isa_build.h); the loops are written to vectorize.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/numeric.h"

#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace llmkit {
namespace LLMKIT_CPU_ISA {

struct WeightFormatInfo {
  int64_t block_elems;
  int64_t block_bytes;
};

static inline WeightFormatInfo weight_format_info(WeightFormat f) {
  switch (f) {
    case WeightFormat::kF32: return {1, 4};
    case WeightFormat::kF16: return {1, 2};
    case WeightFormat::kBF16: return {1, 2};
    case WeightFormat::kQ8_0: return {32, 34};
    case WeightFormat::kQ4_0: return {32, 18};
    case WeightFormat::kQ4_1: return {32, 20};
    case WeightFormat::kQ5_0: return {32, 22};
    case WeightFormat::kQ5_1: return {32, 24};
    case WeightFormat::kQ4_K: return {256, 144};
    case WeightFormat::kQ5_K: return {256, 176};
    case WeightFormat::kQ6_K: return {256, 210};
  }
  return {1, 4};
}

static inline float read_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);  // exact, like the portable conversion
#else
  return half_to_float(h);
#endif
}

#if defined(__AVX2__)
// 8 bytes (unsigned or signed) -> 8 floats times d (plus m): value for value what the scalar loops give.
static inline void store8(float* y, __m128i bytes8, bool is_signed, __m256 d, const __m256* m) {
  const __m256i ints = is_signed ? _mm256_cvtepi8_epi32(bytes8) : _mm256_cvtepu8_epi32(bytes8);
  __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(ints), d);
  if (m != nullptr) v = _mm256_add_ps(v, *m);
  _mm256_storeu_ps(y, v);
}

static inline void decode_nibbles_avx2(const uint8_t* qs, float* y, __m256 d, const __m256* m, int offset) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  __m128i lo = _mm_and_si128(packed, mask);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
  if (offset != 0) {  // Q4_0: q - 8, as signed bytes
    lo = _mm_sub_epi8(lo, _mm_set1_epi8(char(offset)));
    hi = _mm_sub_epi8(hi, _mm_set1_epi8(char(offset)));
  }
  const bool is_signed = offset != 0;
  store8(y, lo, is_signed, d, m);
  store8(y + 8, _mm_srli_si128(lo, 8), is_signed, d, m);
  store8(y + 16, hi, is_signed, d, m);
  store8(y + 24, _mm_srli_si128(hi, 8), is_signed, d, m);
}
#endif

static inline void decode_q8_0(const uint8_t* b, float* y) {
  const float d = read_half(b);
#if defined(__AVX2__)
  const __m256 dv = _mm256_set1_ps(d);
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 18));
  store8(y, lo, true, dv, nullptr);
  store8(y + 8, _mm_srli_si128(lo, 8), true, dv, nullptr);
  store8(y + 16, hi, true, dv, nullptr);
  store8(y + 24, _mm_srli_si128(hi, 8), true, dv, nullptr);
  return;
#endif
  const int8_t* q = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = float(q[j]) * d;
}

static inline void decode_q4_0(const uint8_t* b, float* y) {
  const float d = read_half(b);
#if defined(__AVX2__)
  decode_nibbles_avx2(b + 2, y, _mm256_set1_ps(d), nullptr, 8);
  return;
#endif
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(int(q[j] & 0x0F) - 8) * d;
    y[j + 16] = float(int(q[j] >> 4) - 8) * d;
  }
}

static inline void decode_q4_1(const uint8_t* b, float* y) {
  const float d = read_half(b), m = read_half(b + 2);
#if defined(__AVX2__)
  const __m256 mv = _mm256_set1_ps(m);
  decode_nibbles_avx2(b + 4, y, _mm256_set1_ps(d), &mv, 0);
  return;
#endif
  const uint8_t* q = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = float(q[j] & 0x0F) * d + m;
    y[j + 16] = float(q[j] >> 4) * d + m;
  }
}

static inline void decode_q5_0(const uint8_t* b, float* y) {
  const float d = read_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* q = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = int((q[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
    const int hi = int((q[j] >> 4) | ((qh >> (j + 12)) & 0x10));
    y[j] = float(lo - 16) * d;
    y[j + 16] = float(hi - 16) * d;
  }
}

static inline void decode_q5_1(const uint8_t* b, float* y) {
  const float d = read_half(b), m = read_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* q = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = int((q[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
    const int hi = int((q[j] >> 4) | ((qh >> (j + 12)) & 0x10));
    y[j] = float(lo) * d + m;
    y[j + 16] = float(hi) * d + m;
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
static inline void k_scale_min(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

static inline void decode_q4_k(const uint8_t* b, float* y) {
  const float d = read_half(b), dmin = read_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < 4; ++j) {
    int s1, m1, s2, m2;
    k_scale_min(2 * j, scales, &s1, &m1);
    k_scale_min(2 * j + 1, scales, &s2, &m2);
    const float d1 = d * float(s1), c1 = dmin * float(m1), d2 = d * float(s2), c2 = dmin * float(m2);
    for (int l = 0; l < 32; ++l) {
      y[64 * j + l] = d1 * float(q[l] & 0x0F) - c1;
      y[64 * j + 32 + l] = d2 * float(q[l] >> 4) - c2;
    }
    q += 32;
  }
}

static inline void decode_q5_k(const uint8_t* b, float* y) {
  const float d = read_half(b), dmin = read_half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* q = b + 48;
  for (int j = 0; j < 4; ++j) {
    int s1, m1, s2, m2;
    k_scale_min(2 * j, scales, &s1, &m1);
    k_scale_min(2 * j + 1, scales, &s2, &m2);
    const float d1 = d * float(s1), c1 = dmin * float(m1), d2 = d * float(s2), c2 = dmin * float(m2);
    const int lo_bit = 2 * j, hi_bit = 2 * j + 1;
    for (int l = 0; l < 32; ++l) {
      y[64 * j + l] = d1 * float((q[l] & 0x0F) + (((qh[l] >> lo_bit) & 1) << 4)) - c1;
      y[64 * j + 32 + l] = d2 * float((q[l] >> 4) + (((qh[l] >> hi_bit) & 1) << 4)) - c2;
    }
    q += 32;
  }
}

static inline void decode_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = read_half(b + 208);
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// Decodes `cols` elements of one stored row (cols a multiple of the block size).
template <WeightFormat F>
static inline void decode_row(const uint8_t* row, int64_t cols, float* y) {
  if constexpr (F == WeightFormat::kF32) {
    std::memcpy(y, row, size_t(cols) * 4);
  } else if constexpr (F == WeightFormat::kF16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
    for (int64_t j = 0; j < cols; ++j) y[j] = half_to_float(h[j]);
  } else if constexpr (F == WeightFormat::kBF16) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
    for (int64_t j = 0; j < cols; ++j) y[j] = bf16_to_float(h[j]);
  } else {
    constexpr WeightFormat f = F;
    const WeightFormatInfo info = weight_format_info(f);
    const int64_t blocks = cols / info.block_elems;
    for (int64_t i = 0; i < blocks; ++i) {
      const uint8_t* b = row + i * info.block_bytes;
      float* out = y + i * info.block_elems;
      if constexpr (F == WeightFormat::kQ8_0) decode_q8_0(b, out);
      else if constexpr (F == WeightFormat::kQ4_0) decode_q4_0(b, out);
      else if constexpr (F == WeightFormat::kQ4_1) decode_q4_1(b, out);
      else if constexpr (F == WeightFormat::kQ5_0) decode_q5_0(b, out);
      else if constexpr (F == WeightFormat::kQ5_1) decode_q5_1(b, out);
      else if constexpr (F == WeightFormat::kQ4_K) decode_q4_k(b, out);
      else if constexpr (F == WeightFormat::kQ5_K) decode_q5_k(b, out);
      else decode_q6_k(b, out);
    }
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
