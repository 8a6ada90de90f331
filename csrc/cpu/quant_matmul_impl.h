// Quantized matmul on the CPU with float32 activations: out[n, rows] = x[n, cols] @ W^T (+ bias), W in
// a GGUF block format. Built once per instruction set.
//
// Rows are split across threads in contiguous ranges. Two kernels, by token count:
// - fewer than kGemmMinTokens (decode): a thread decodes kTileRows rows of W at a time into an L1 tile
//   of float32 (the exact values llmkit/core/quant/reference.py gives), then takes dot products with
//   every token, kTileTokens tokens per pass, in kTileRows x kTileTokens vector accumulators;
// - more (prefill, large batches): a register-blocked GEMM over k-major panels of decoded rows (below).
// Results equal the dequantized float32 reference up to summation order.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/quant_blocks.h"
#include "cpu/quant_int8_impl.h"
#include "cpu/thread_pool.h"
#include "cpu/vec.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

constexpr int kTileRows = 4;
#if defined(__AVX512F__)
constexpr int kTileTokens = 4;  // 16 accumulators of 32 zmm
#else
constexpr int kTileTokens = 2;  // 8 accumulators of 16 ymm/xmm
#endif

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

// Many tokens (prefill, large batches): a register-blocked GEMM. A panel of kPanelRows rows of W is
// decoded once per block of kTokenBlock tokens into a k-major float layout (panel[k][r]), then
// kGemmTokens tokens at a time run through 2 x kGemmTokens vector accumulators: per column k, two
// panel loads and kGemmTokens broadcasts of x feed 2 x kGemmTokens FMAs, and each accumulator lane is
// one output (no horizontal sums). The token block keeps x's rows in L2 while the panels stream by.
constexpr int kPanelRows = 2 * kVecFloats;
constexpr int kGemmTokens = 6;
constexpr int64_t kTokenBlock = 512;
constexpr int64_t kGemmMinTokens = 48;  // fewer tokens: the tile kernel above (measured crossover, AVX2)

template <int T>
static inline void panel_product(const float* panel, int64_t cols, const float* x, int64_t x_stride, float* out,
                                 int64_t out_stride, int rows, const float* bias) {
  VecF acc[T][2];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = VecF{};
  for (int64_t k = 0; k < cols; ++k) {
    const VecF w0 = load_vec(panel + k * kPanelRows);
    const VecF w1 = load_vec(panel + k * kPanelRows + kVecFloats);
    for (int t = 0; t < T; ++t) {
      const VecF xv = splat(x[t * x_stride + k]);
      acc[t][0] += w0 * xv;
      acc[t][1] += w1 * xv;
    }
  }
  for (int t = 0; t < T; ++t) {
    float lanes[kPanelRows];
    *reinterpret_cast<VecFU*>(lanes) = acc[t][0];
    *reinterpret_cast<VecFU*>(lanes + kVecFloats) = acc[t][1];
    float* dst = out + t * out_stride;
    for (int r = 0; r < rows; ++r) dst[r] = bias != nullptr ? lanes[r] + bias[r] : lanes[r];
  }
}

template <WeightFormat F>
static void quant_gemm_range(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  thread_local TileBuffer panel_buffer, row_buffer;
  float* panel = panel_buffer.reserve(kPanelRows * a.cols);
  float* row_values = row_buffer.reserve(a.cols);
  const uint8_t* weight = static_cast<const uint8_t*>(a.weight);
  for (int64_t t0 = 0; t0 < a.n; t0 += kTokenBlock) {
    const int64_t t_end = t0 + kTokenBlock < a.n ? t0 + kTokenBlock : a.n;
    for (int64_t row = begin; row < end; row += kPanelRows) {
      const int rows = end - row < kPanelRows ? int(end - row) : kPanelRows;
      for (int r = 0; r < kPanelRows; ++r) {
        if (r < rows) decode_row<F>(weight + (row + r) * a.row_bytes, a.cols, row_values);
        for (int64_t k = 0; k < a.cols; ++k) panel[k * kPanelRows + r] = r < rows ? row_values[k] : 0.0f;
      }
      const float* bias = a.bias != nullptr ? a.bias + row : nullptr;
      int64_t t = t0;
      for (; t + kGemmTokens <= t_end; t += kGemmTokens) {
        panel_product<kGemmTokens>(panel, a.cols, a.x + t * a.x_stride, a.x_stride, a.out + t * a.out_stride + row,
                                   a.out_stride, rows, bias);
      }
      for (; t < t_end; ++t) {
        panel_product<1>(panel, a.cols, a.x + t * a.x_stride, a.x_stride, a.out + t * a.out_stride + row,
                         a.out_stride, rows, bias);
      }
    }
  }
}

// One thread's share: output rows [begin, end).
template <WeightFormat F>
static void quant_matmul_range(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  if (a.n >= kGemmMinTokens) {
    quant_gemm_range<F>(a, begin, end);
    return;
  }
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

// Calls fn(std::integral_constant<WeightFormat, f>{}) for the run-time format f: one switch for every
// per-format kernel.
template <class Fn>
static inline void with_format(WeightFormat f, Fn&& fn) {
  using W = WeightFormat;
  switch (f) {
    case W::kF32: fn(std::integral_constant<W, W::kF32>{}); break;
    case W::kF16: fn(std::integral_constant<W, W::kF16>{}); break;
    case W::kBF16: fn(std::integral_constant<W, W::kBF16>{}); break;
    case W::kQ8_0: fn(std::integral_constant<W, W::kQ8_0>{}); break;
    case W::kQ4_0: fn(std::integral_constant<W, W::kQ4_0>{}); break;
    case W::kQ4_1: fn(std::integral_constant<W, W::kQ4_1>{}); break;
    case W::kQ5_0: fn(std::integral_constant<W, W::kQ5_0>{}); break;
    case W::kQ5_1: fn(std::integral_constant<W, W::kQ5_1>{}); break;
    case W::kQ4_K: fn(std::integral_constant<W, W::kQ4_K>{}); break;
    case W::kQ5_K: fn(std::integral_constant<W, W::kQ5_K>{}); break;
    case W::kQ6_K: fn(std::integral_constant<W, W::kQ6_K>{}); break;
  }
}

static void quant_matmul_rows(const QuantMatmulArgs& a, int64_t begin, int64_t end) {
  if (a.int8_activations && int8_matmul_rows(a, begin, end)) return;
  with_format(a.format, [&](auto format) { quant_matmul_range<decltype(format)::value>(a, begin, end); });
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
  with_format(a.format, [&](auto format) {
    for (int64_t i = 0; i < count; ++i) {
      decode_row<decltype(format)::value>(weight + ids[i] * a.row_bytes, a.cols, a.out + i * a.out_stride);
    }
  });
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
