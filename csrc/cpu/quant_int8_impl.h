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

#include "cpu/int8_repack.h"
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

#if defined(__AVX2__)
// One block of 32 floats: the scalar loop's amax, d and 1/d, then q = round-half-even(v * (1 / d)) by
// cvtps (the default rounding mode, as nearbyint), so both give the same bytes, scales and sums.
static inline void quantize_block_q8(const float* v, int8_t* q, float* d_out, float* s_out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 x[4];
  __m256 amax_v = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    x[i] = _mm256_loadu_ps(v + 8 * i);
    amax_v = _mm256_max_ps(_mm256_and_ps(x[i], abs_mask), amax_v);
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax_v), _mm256_extractf128_ps(amax_v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const __m256 inv = _mm256_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
  __m256i q32[4];
  for (int i = 0; i < 4; ++i) q32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(x[i], inv));
  const __m256i sum32 = _mm256_add_epi32(_mm256_add_epi32(q32[0], q32[1]), _mm256_add_epi32(q32[2], q32[3]));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum32), _mm256_extracti128_si256(sum32, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  // packs work within 128-bit lanes: the bytes come out in dword order 0 4 1 5 2 6 3 7.
  const __m256i q16a = _mm256_packs_epi32(q32[0], q32[1]);
  const __m256i q16b = _mm256_packs_epi32(q32[2], q32[3]);
  const __m256i q8 = _mm256_packs_epi16(q16a, q16b);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  *d_out = d;
  *s_out = d * float(_mm_cvtsi128_si32(s));
}
#endif

static void quantize_q8(const float* x, int64_t x_stride, int64_t n, int64_t cols, int8_t* q_out, float* d_out,
                        float* s_out) {
  const int64_t blocks = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    const float* row = x + t * x_stride;
    for (int64_t b = 0; b < blocks; ++b) {
      const float* v = row + b * 32;
      int8_t* q = q_out + t * cols + b * 32;
#if defined(__AVX2__)
      quantize_block_q8(v, q, d_out + t * blocks + b, s_out + t * blocks + b);
#else
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::fabs(v[j]) > amax ? std::fabs(v[j]) : amax;
      const float d = amax / 127.0f;
      const float inv = d > 0.0f ? 1.0f / d : 0.0f;
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) {
        q[j] = int8_t(std::nearbyint(v[j] * inv));
        sum += q[j];
      }
      d_out[t * blocks + b] = d;
      s_out[t * blocks + b] = d * float(sum);
#endif
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

// Repacked weights (cpu/int8_repack.h): rows [row, row + 8), one group, for tokens [t0, t0 + T). Each
// token's 4 activation bytes are broadcast against 4 weights of all 8 rows; the 8 maddubs of a Q4
// block add up in int16 (each lane |w0 x0 + w1 x1| <= 2 * 15 * 127 = 3810, eight of them <= 30480), then
// one madd gives the 8 rows' int32 dots. Q8_0 (|w| <= 128 by the sign trick, |x| <= 127) fills an int16
// lane up to 32512 with one maddubs, so each goes through madd into int32 at once.
template <WeightFormat F, int T>
static inline void int8_packed_group(const QuantMatmulArgs& a, const PackedInt8Weight& w, const Q8View& qa,
                                     int64_t row, int64_t t0) {
  constexpr int64_t header = F == WeightFormat::kQ4_1 ? 32 : 16;  // fp16 d[8] (+ m[8])
  const int64_t blocks = a.cols / 32;
  const uint8_t* group = w.groups + (row / kPackRows) * blocks * w.group_block_bytes;
  float out[T][kPackRows];
#if defined(__AVX2__)
  // Token by token within a block: the block's weights stay in registers (Q4: 8 nibble vectors) and each
  // token's dot is one chain of maddubs into one register, scaled into its accumulator at once. (Letting
  // the compiler interleave all tokens' maddubs made it spill them to the stack.)
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* p = group + b * w.group_block_bytes;
    const uint8_t* qs = p + header;
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    __m256 m = _mm256_setzero_ps();
    if constexpr (F == WeightFormat::kQ4_1) m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    if constexpr (F == WeightFormat::kQ8_0) {
      for (int t = 0; t < T; ++t) {
        const int8_t* x = qa.q + (t0 + t) * a.cols + b * 32;
        __m256i dot = _mm256_setzero_si256();
        for (int k = 0; k < 8; ++k) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
          int32_t x4;
          std::memcpy(&x4, x + 4 * k, 4);
          const __m256i xs = _mm256_sign_epi8(_mm256_set1_epi32(x4), v);
          dot = _mm256_add_epi32(dot, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(v, v), xs), ones));
        }
        const int64_t tb = (t0 + t) * blocks + b;
        acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(qa.d[tb])), _mm256_cvtepi32_ps(dot), acc[t]);
      }
    } else {
      __m256i lo[4], hi[4];
      for (int k = 0; k < 4; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
        lo[k] = _mm256_and_si256(v, low4);
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      }
      for (int t = 0; t < T; ++t) {
        const int8_t* x = qa.q + (t0 + t) * a.cols + b * 32;
        __m256i sum = _mm256_setzero_si256();
        for (int k = 0; k < 4; ++k) {
          int32_t x_lo, x_hi;
          std::memcpy(&x_lo, x + 4 * k, 4);
          std::memcpy(&x_hi, x + 16 + 4 * k, 4);
          sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(lo[k], _mm256_set1_epi32(x_lo)));
          sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(hi[k], _mm256_set1_epi32(x_hi)));
        }
        const __m256 dotf = _mm256_cvtepi32_ps(_mm256_madd_epi16(sum, ones));
        const int64_t tb = (t0 + t) * blocks + b;
        if constexpr (F == WeightFormat::kQ4_0) {  // d * (dx * dot - 8 * dx * sum(q_x))
          acc[t] = _mm256_fmadd_ps(d, _mm256_fmadd_ps(_mm256_set1_ps(qa.d[tb]), dotf, _mm256_set1_ps(-8.0f * qa.s[tb])), acc[t]);
        } else {  // d * dx * dot + m * dx * sum(q_x)
          acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(qa.d[tb])), dotf, acc[t]);
          acc[t] = _mm256_fmadd_ps(m, _mm256_set1_ps(qa.s[tb]), acc[t]);
        }
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out[t], acc[t]);
#else
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < kPackRows; ++r) out[t][r] = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* p = group + b * w.group_block_bytes;
    const uint8_t* qs = p + header;
    for (int r = 0; r < kPackRows; ++r) {
      const float d = read_half(p + 2 * r);
      const float m = F == WeightFormat::kQ4_1 ? read_half(p + 16 + 2 * r) : 0.0f;
      for (int t = 0; t < T; ++t) {
        const int64_t tb = (t0 + t) * blocks + b;
        const int8_t* x = qa.q + (t0 + t) * a.cols + b * 32;
        int32_t dot = 0;
        if constexpr (F == WeightFormat::kQ8_0) {
          for (int k = 0; k < 8; ++k)
            for (int j = 0; j < 4; ++j) dot += int32_t(int8_t(qs[32 * k + 4 * r + j])) * int32_t(x[4 * k + j]);
        } else {
          for (int k = 0; k < 4; ++k) {
            for (int j = 0; j < 4; ++j) {
              const uint8_t byte = qs[32 * k + 4 * r + j];
              dot += int32_t(byte & 0x0F) * int32_t(x[4 * k + j]) + int32_t(byte >> 4) * int32_t(x[16 + 4 * k + j]);
            }
          }
        }
        const float dx = qa.d[tb], sx = qa.s[tb];
        if constexpr (F == WeightFormat::kQ4_0) {
          out[t][r] += d * (dx * float(dot) - 8.0f * sx);
        } else if constexpr (F == WeightFormat::kQ4_1) {
          out[t][r] += d * dx * float(dot) + m * sx;
        } else {
          out[t][r] += d * dx * float(dot);
        }
      }
    }
  }
#endif
  for (int t = 0; t < T; ++t) {
    float* dst = a.out + (t0 + t) * a.out_stride + row;
    for (int r = 0; r < kPackRows; ++r) dst[r] = out[t][r] + (a.bias != nullptr ? a.bias[row + r] : 0.0f);
  }
}

constexpr int kPackedTokens = 4;

template <WeightFormat F>
static void int8_packed_range(const QuantMatmulArgs& a, const PackedInt8Weight& w, const Q8View& qa, int64_t begin,
                              int64_t end) {
  const int64_t group_end = end < w.group_rows ? end : w.group_rows;
  for (int64_t row = begin; row < group_end; row += kPackRows) {
    int64_t t = 0;
    for (; t + kPackedTokens <= a.n; t += kPackedTokens) int8_packed_group<F, kPackedTokens>(a, w, qa, row, t);
    switch (a.n - t) {
      case 3: int8_packed_group<F, 3>(a, w, qa, row, t); break;
      case 2: int8_packed_group<F, 2>(a, w, qa, row, t); break;
      case 1: int8_packed_group<F, 1>(a, w, qa, row, t); break;
      default: break;
    }
  }
  if (end > w.group_rows) {  // rows % 8 tail: the GGUF-layout path over the tail's copy
    const int64_t first = begin > w.group_rows ? begin : w.group_rows;
    QuantMatmulArgs tail = a;
    tail.weight = w.tail;
    tail.format = w.format;
    tail.row_bytes = w.row_bytes;
    tail.rows = w.rows - w.group_rows;
    tail.out = a.out + w.group_rows;
    tail.bias = a.bias != nullptr ? a.bias + w.group_rows : nullptr;
    tail.x_q8 = qa.q;
    tail.x_q8_scale = qa.d;
    tail.x_q8_sum = qa.s;
    int64_t t = 0;
    for (; t + kInt8Tokens <= a.n; t += kInt8Tokens)
      int8_rows<F, 1, kInt8Tokens>(tail, qa, first - w.group_rows, end - w.group_rows, t);
    for (; t < a.n; ++t) int8_rows<F, 1, 1>(tail, qa, first - w.group_rows, end - w.group_rows, t);
  }
}

// Rows [begin, end) of out = x @ W^T with int8 activations from W repacked (begin a multiple of 8 or at
// least the tail's first row); `a` gives x (or x_q8), n, out and bias; its weight fields are unused.
static void int8_packed_rows(const QuantMatmulArgs& a, const PackedInt8Weight& w, int64_t begin, int64_t end) {
  Q8View qa{a.x_q8, a.x_q8_scale, a.x_q8_sum};
  if (qa.q == nullptr) {
    thread_local QuantizedActivations own;
    own.reserve(a.n, a.cols);
    quantize_q8(a.x, a.x_stride, a.n, a.cols, own.q, own.d, own.s);
    qa = Q8View{own.q, own.d, own.s};
  }
  switch (w.format) {
    case WeightFormat::kQ8_0: int8_packed_range<WeightFormat::kQ8_0>(a, w, qa, begin, end); break;
    case WeightFormat::kQ4_0: int8_packed_range<WeightFormat::kQ4_0>(a, w, qa, begin, end); break;
    case WeightFormat::kQ4_1: int8_packed_range<WeightFormat::kQ4_1>(a, w, qa, begin, end); break;
    default: break;
  }
}


}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
