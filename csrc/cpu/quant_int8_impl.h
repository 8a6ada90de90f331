// Quantized matmul with int8 activations (Q8_0 / Q4_0 / Q4_1 weights), built once per instruction set.
//
// Each token row of x is quantized per 32 columns, the way llama.cpp quantizes activations to Q8:
// d = max|x| / 127, q = round-half-even(x * (1 / d)) (q = 0 where d = 0). A block's product is then
// d_w * d_x * sum(q_w * q_x), plus the weight's offset times sum(q_x) (Q4_0: -8; Q4_1: m / d_w), in
// integers with AVX2's maddubs where the build has it. The error against float32 activations is the
// activation rounding (relative ~0.3% of a row's dot products; see docs/kernels.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "cpu/quant_blocks.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

// x rows quantized per 32 columns: q [n, cols] int8, d [n, cols/32], s [n, cols/32] = d * sum(q).
struct QuantizedActivations {
  int8_t* q = nullptr;
  float* d = nullptr;
  float* s = nullptr;
  int64_t capacity = 0;

  void reserve(int64_t n, int64_t cols) {
    if (capacity >= n * cols) return;
    std::free(q);
    std::free(d);
    std::free(s);
    capacity = n * cols;
    q = static_cast<int8_t*>(std::aligned_alloc(64, ((capacity + 63) / 64) * 64));
    d = static_cast<float*>(std::aligned_alloc(64, ((capacity / 32 * 4 + 63) / 64) * 64 + 64));
    s = static_cast<float*>(std::aligned_alloc(64, ((capacity / 32 * 4 + 63) / 64) * 64 + 64));
  }
  ~QuantizedActivations() {
    std::free(q);
    std::free(d);
    std::free(s);
  }
};

static void quantize_q8(const float* x, int64_t x_stride, int64_t n, int64_t cols, int8_t* q_out, float* d_out,
                        float* s_out) {
  const int64_t blocks = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    const float* row = x + t * x_stride;
    for (int64_t b = 0; b < blocks; ++b) {
      const float* v = row + b * 32;
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::fabs(v[j]) > amax ? std::fabs(v[j]) : amax;
      const float d = amax / 127.0f;
      const float inv = d > 0.0f ? 1.0f / d : 0.0f;
      int8_t* q = q_out + t * cols + b * 32;
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) {
        q[j] = int8_t(std::nearbyint(v[j] * inv));
        sum += q[j];
      }
      d_out[t * blocks + b] = d;
      s_out[t * blocks + b] = d * float(sum);
    }
  }
}

// Weight block b of a row as 32 unsigned (Q4) or signed (Q8) integers plus its scale and offset term:
// value_j = scale * (w_j + offset), with offset applied through sum(q_x).
template <WeightFormat F>
static inline void weight_block(const uint8_t* block, uint8_t* w, float* scale, float* offset_times_d) {
  if constexpr (F == WeightFormat::kQ8_0) {
    *scale = read_half(block);
    std::memcpy(w, block + 2, 32);
    *offset_times_d = 0.0f;
  } else {
    const uint8_t* qs = block + (F == WeightFormat::kQ4_1 ? 4 : 2);
    for (int j = 0; j < 16; ++j) {
      w[j] = qs[j] & 0x0F;
      w[j + 16] = qs[j] >> 4;
    }
    *scale = read_half(block);
    *offset_times_d = F == WeightFormat::kQ4_1 ? read_half(block + 2) : -8.0f * *scale;
  }
}

#if defined(__AVX2__)
static inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

static inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

constexpr int kInt8Tokens = 4;

// Quantized activations as the kernel reads them.
struct Q8View {
  const int8_t* q;
  const float* d;
  const float* s;
};

// Weight block `block` as 32 integers (unsigned nibbles, or signed bytes for Q8_0), its scale, and the
// offset that multiplies sum(q_x) (Q4_0: -8 * scale; Q4_1: m; Q8_0: none).
#if defined(__AVX2__)
template <WeightFormat F>
static inline __m256i load_weight_block(const uint8_t* block, float* scale, float* offset) {
  *scale = read_half(block);
  if constexpr (F == WeightFormat::kQ8_0) {
    *offset = 0.0f;
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
  } else {
    *offset = F == WeightFormat::kQ4_1 ? read_half(block + 2) : -8.0f * *scale;
    return unpack_nibbles(block + (F == WeightFormat::kQ4_1 ? 4 : 2));
  }
}
#endif

// Output rows [row, row + R) x tokens [t0, t0 + T): R x T accumulators, so each weight block is decoded
// once for T tokens and each activation block loaded once for R rows (and R x T independent FMA chains
// hide the FMA latency that one accumulator would wait on at batch 1).
template <WeightFormat F, int R, int T>
static inline void int8_tile(const QuantMatmulArgs& a, const Q8View& qa, int64_t row, int64_t t0) {
  const int64_t block_bytes = weight_format_info(F).block_bytes;
  const int64_t blocks = a.cols / 32;
  const uint8_t* w_row[R];
  for (int r = 0; r < R; ++r) w_row[r] = static_cast<const uint8_t*>(a.weight) + (row + r) * a.row_bytes;
  float offset_sum[R][T] = {};
  float sums[R][T];
#if defined(__AVX2__)
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < blocks; ++b) {
    __m256i w[R];
    float scale[R], offset[R];
    for (int r = 0; r < R; ++r) w[r] = load_weight_block<F>(w_row[r] + b * block_bytes, &scale[r], &offset[r]);
    for (int t = 0; t < T; ++t) {
      const int64_t tb = (t0 + t) * blocks + b;
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qa.q + (t0 + t) * a.cols + b * 32));
      const float dx = qa.d[tb];
      for (int r = 0; r < R; ++r) {
        // maddubs multiplies unsigned by signed bytes: Q8_0 moves the weight's sign onto x.
        const __m256i w_u = F == WeightFormat::kQ8_0 ? _mm256_sign_epi8(w[r], w[r]) : w[r];
        const __m256i x_s = F == WeightFormat::kQ8_0 ? _mm256_sign_epi8(x, w[r]) : x;
        const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w_u, x_s), ones));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(scale[r] * dx), dot, acc[r][t]);
        if constexpr (F != WeightFormat::kQ8_0) offset_sum[r][t] += offset[r] * qa.s[tb];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) sums[r][t] = hsum_ps(acc[r][t]) + offset_sum[r][t];
#else
  float acc[R][T] = {};
  uint8_t w[32];
  for (int64_t b = 0; b < blocks; ++b) {
    for (int r = 0; r < R; ++r) {
      float scale, offset;
      weight_block<F>(w_row[r] + b * block_bytes, w, &scale, &offset);
      for (int t = 0; t < T; ++t) {
        const int64_t tb = (t0 + t) * blocks + b;
        const int8_t* x = qa.q + (t0 + t) * a.cols + b * 32;
        int32_t dot = 0;
        for (int j = 0; j < 32; ++j) {
          const int32_t wj = F == WeightFormat::kQ8_0 ? int32_t(int8_t(w[j])) : int32_t(w[j]);
          dot += wj * int32_t(x[j]);
        }
        acc[r][t] += scale * qa.d[tb] * float(dot);
        offset_sum[r][t] += offset * qa.s[tb];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) sums[r][t] = acc[r][t] + offset_sum[r][t];
#endif
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      const float bias = a.bias != nullptr ? a.bias[row + r] : 0.0f;
      a.out[(t0 + t) * a.out_stride + row + r] = sums[r][t] + bias;
    }
  }
}

// Rows [begin, end) for tokens [t0, t0 + T), R rows at a time.
template <WeightFormat F, int R, int T>
static inline void int8_rows(const QuantMatmulArgs& a, const Q8View& qa, int64_t begin, int64_t end, int64_t t0) {
  int64_t row = begin;
  for (; row + R <= end; row += R) int8_tile<F, R, T>(a, qa, row, t0);
  for (; row < end; ++row) int8_tile<F, 1, T>(a, qa, row, t0);
}

template <WeightFormat F>
static void int8_matmul_range(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  Q8View qa{a.x_q8, a.x_q8_scale, a.x_q8_sum};
  if (qa.q == nullptr) {
    thread_local QuantizedActivations own;
    own.reserve(a.n, a.cols);
    quantize_q8(a.x, a.x_stride, a.n, a.cols, own.q, own.d, own.s);
    qa = Q8View{own.q, own.d, own.s};
  }
  int64_t t = 0;
  for (; t + kInt8Tokens <= a.n; t += kInt8Tokens) int8_rows<F, 2, kInt8Tokens>(a, qa, begin, end, t);
  for (; t < a.n; ++t) int8_rows<F, 4, 1>(a, qa, begin, end, t);
}

// True when the int8 path ran rows [begin, end); false when the format has no int8 path.
static inline bool int8_matmul_rows(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  switch (a.format) {
    case WeightFormat::kQ8_0: int8_matmul_range<WeightFormat::kQ8_0>(a, begin, end); return true;
    case WeightFormat::kQ4_0: int8_matmul_range<WeightFormat::kQ4_0>(a, begin, end); return true;
    case WeightFormat::kQ4_1: int8_matmul_range<WeightFormat::kQ4_1>(a, begin, end); return true;
    default: return false;
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
