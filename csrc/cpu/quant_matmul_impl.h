// Quantized matmul on the CPU with float32 activations: out[n, rows] = x[n, cols] @ W^T (+ bias), W in
// a GGUF block format. Built once per instruction set.
//
// Rows are split across threads in contiguous ranges. A thread decodes kTileRows rows of W at a time
// into an L1 tile of float32 (the exact values llmkit/core/quant/reference.py gives), then multiplies
// it with every token of x, kTileTokens tokens per pass, in kTileRows x kTileTokens vector accumulators.
// Decoding once per tile amortizes it over all tokens, so one kernel serves decode (n = 1..16) and
// prefill (n in the thousands). Results equal the dequantized float32 reference up to summation order.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu/quant_blocks.h"
#include "cpu/quant_int8_impl.h"
#include "cpu/thread_pool.h"

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

constexpr int kTileRows = 4;
#if defined(__AVX512F__)
constexpr int kTileTokens = 4;  // 16 accumulators of 32 zmm
#else
constexpr int kTileTokens = 2;  // 8 accumulators of 16 ymm/xmm
#endif

static inline VecF load_vec(const float* p) { return *reinterpret_cast<const VecFU*>(p); }

static inline float hsum(VecF v) {
  float s = 0.0f;
  for (int i = 0; i < kVecFloats; ++i) s += v[i];
  return s;
}

// R rows of the decoded tile (row stride `cols`) times T tokens of x; writes out[t][r].
template <int R, int T>
static inline void tile_product(const float* w, int64_t cols, const float* x, int64_t x_stride, float* out,
                                int64_t out_stride, const float* bias) {
  VecF acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = VecF{};
  const int64_t vec_cols = cols - cols % kVecFloats;
  for (int64_t c = 0; c < vec_cols; c += kVecFloats) {
    VecF wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load_vec(w + r * cols + c);
    for (int t = 0; t < T; ++t) {
      const VecF xv = load_vec(x + t * x_stride + c);
      for (int r = 0; r < R; ++r) acc[r][t] += wv[r] * xv;
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float sum = hsum(acc[r][t]);
      for (int64_t c = vec_cols; c < cols; ++c) sum += w[r * cols + c] * x[t * x_stride + c];
      out[t * out_stride + r] = bias != nullptr ? sum + bias[r] : sum;
    }
  }
}

template <int R>
static inline void rows_times_tokens(const float* w, const QuantMatmulArgs& a, int64_t row) {
  const float* bias = a.bias != nullptr ? a.bias + row : nullptr;
  int64_t t = 0;
  for (; t + kTileTokens <= a.n; t += kTileTokens) {
    tile_product<R, kTileTokens>(w, a.cols, a.x + t * a.x_stride, a.x_stride, a.out + t * a.out_stride + row,
                                 a.out_stride, bias);
  }
  for (; t < a.n; ++t) {
    tile_product<R, 1>(w, a.cols, a.x + t * a.x_stride, a.x_stride, a.out + t * a.out_stride + row, a.out_stride,
                       bias);
  }
}

// Each thread's decoded-weight tile, grown to the widest matrix it has seen.
struct TileBuffer {
  float* data = nullptr;
  int64_t floats = 0;
  float* reserve(int64_t needed) {
    if (floats < needed) {
      std::free(data);
      floats = needed;
      data = static_cast<float*>(std::aligned_alloc(64, ((needed * 4 + 63) / 64) * 64));
    }
    return data;
  }
  ~TileBuffer() { std::free(data); }
};

// One thread's share: output rows [begin, end).
template <WeightFormat F>
static void quant_matmul_range(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  thread_local TileBuffer buffer;
  float* tile = buffer.reserve(kTileRows * a.cols);
  const uint8_t* weight = static_cast<const uint8_t*>(a.weight);
  for (int64_t row = begin; row < end; row += kTileRows) {
    const int rows = end - row < kTileRows ? int(end - row) : kTileRows;
    for (int r = 0; r < rows; ++r) decode_row<F>(weight + (row + r) * a.row_bytes, a.cols, tile + r * a.cols);
    switch (rows) {
      case 4: rows_times_tokens<4>(tile, a, row); break;
      case 3: rows_times_tokens<3>(tile, a, row); break;
      case 2: rows_times_tokens<2>(tile, a, row); break;
      default: rows_times_tokens<1>(tile, a, row); break;
    }
  }
}

static void quant_matmul_rows(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  if (a.int8_activations && int8_matmul_rows(a, begin, end)) return;
  switch (a.format) {
    case WeightFormat::kF32: quant_matmul_range<WeightFormat::kF32>(a, begin, end); break;
    case WeightFormat::kF16: quant_matmul_range<WeightFormat::kF16>(a, begin, end); break;
    case WeightFormat::kBF16: quant_matmul_range<WeightFormat::kBF16>(a, begin, end); break;
    case WeightFormat::kQ8_0: quant_matmul_range<WeightFormat::kQ8_0>(a, begin, end); break;
    case WeightFormat::kQ4_0: quant_matmul_range<WeightFormat::kQ4_0>(a, begin, end); break;
    case WeightFormat::kQ4_1: quant_matmul_range<WeightFormat::kQ4_1>(a, begin, end); break;
    case WeightFormat::kQ5_0: quant_matmul_range<WeightFormat::kQ5_0>(a, begin, end); break;
    case WeightFormat::kQ5_1: quant_matmul_range<WeightFormat::kQ5_1>(a, begin, end); break;
    case WeightFormat::kQ4_K: quant_matmul_range<WeightFormat::kQ4_K>(a, begin, end); break;
    case WeightFormat::kQ5_K: quant_matmul_range<WeightFormat::kQ5_K>(a, begin, end); break;
    case WeightFormat::kQ6_K: quant_matmul_range<WeightFormat::kQ6_K>(a, begin, end); break;
  }
}

static void quant_matmul(const QuantMatmulArgs& a, int num_threads) {
  const int64_t work = a.rows * a.cols * a.n;
  const int threads = work < (1 << 16) ? 1 : num_threads;
  cpu::parallel_for_ranges(a.rows, kTileRows, threads,
                           [&](int64_t begin, int64_t end) { quant_matmul_rows(a, begin, end); });
}

// Rows `ids` of W decoded to float32 (embedding lookups): out[i, cols].
static void dequantize_rows(const QuantMatmulArgs& a, const int64_t* ids, int64_t count) {
  const uint8_t* weight = static_cast<const uint8_t*>(a.weight);
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* row = weight + ids[i] * a.row_bytes;
    float* out = a.out + i * a.out_stride;
    switch (a.format) {
      case WeightFormat::kF32: decode_row<WeightFormat::kF32>(row, a.cols, out); break;
      case WeightFormat::kF16: decode_row<WeightFormat::kF16>(row, a.cols, out); break;
      case WeightFormat::kBF16: decode_row<WeightFormat::kBF16>(row, a.cols, out); break;
      case WeightFormat::kQ8_0: decode_row<WeightFormat::kQ8_0>(row, a.cols, out); break;
      case WeightFormat::kQ4_0: decode_row<WeightFormat::kQ4_0>(row, a.cols, out); break;
      case WeightFormat::kQ4_1: decode_row<WeightFormat::kQ4_1>(row, a.cols, out); break;
      case WeightFormat::kQ5_0: decode_row<WeightFormat::kQ5_0>(row, a.cols, out); break;
      case WeightFormat::kQ5_1: decode_row<WeightFormat::kQ5_1>(row, a.cols, out); break;
      case WeightFormat::kQ4_K: decode_row<WeightFormat::kQ4_K>(row, a.cols, out); break;
      case WeightFormat::kQ5_K: decode_row<WeightFormat::kQ5_K>(row, a.cols, out); break;
      case WeightFormat::kQ6_K: decode_row<WeightFormat::kQ6_K>(row, a.cols, out); break;
    }
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
