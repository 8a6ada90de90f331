// Matmuls over weights as stored (GGUF block formats, F32/F16/BF16): out = x @ dequantize(W)^T (+ bias),
// float32 activations and accumulation. Weights are dequantized in registers (quant_blocks.cuh), never
// into a float copy in global memory.
//   n <= kGemvMaxTokens (decode): a warp per weight row; the block stages a column tile of every token's
//     activations in shared memory, each lane decodes runs of 8 weights and dots them with all tokens.
//   larger n (prefill): 64-token x 128-row output tiles; each step decodes a 128 x 32 weight tile into
//     shared memory as float and every thread accumulates a 4 x 8 register tile.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/quant_blocks.cuh"

namespace llmkit {
namespace cuda {

namespace {

using quant_blocks::Format;
using quant_blocks::kHasTail;
using quant_blocks::kRun;

constexpr int kWarp = 32;

// ---- decode: GEMV, a warp per row ----

constexpr int kGemvMaxTokens = 16;
constexpr int kGemvWarps = 8;                  // rows per thread block
constexpr int kGemvTileFloats = 8192;          // 32 KiB of staged activations
constexpr unsigned kGemvThreads = kGemvWarps * kWarp;

// kTokens: n rounded up to a power of two; the staged rows n..kTokens-1 are zeros.
template <WeightFormat F, int kTokens>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(QuantMatmulArgs a) {
  constexpr int kTileCols = kGemvTileFloats / kTokens;  // a multiple of 512: runs and blocks never straddle tiles
  __shared__ __align__(16) float x_tile[kTokens][kTileCols];
  const int warp = int(threadIdx.x) / kWarp, lane = int(threadIdx.x) % kWarp;
  const int64_t row = int64_t(blockIdx.x) * kGemvWarps + warp;
  const bool active = row < a.rows;  // idle warps still help stage the activations
  const uint8_t* weights = static_cast<const uint8_t*>(a.weight) + (active ? row : 0) * a.row_bytes;
  float acc[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;

  for (int64_t start = 0; start < a.cols; start += kTileCols) {
    const int width = int(std::min<int64_t>(kTileCols, a.cols - start));
    __syncthreads();  // the previous tile is consumed
    for (int i = int(threadIdx.x); i < kTokens * width; i += int(kGemvThreads)) {
      const int t = i / width, c = i % width;
      x_tile[t][c] = t < a.n ? a.x[t * a.x_stride + start + c] : 0.0f;
    }
    __syncthreads();
    if (!active) continue;
    const int runs = width / kRun;
    for (int r = lane; r < runs; r += kWarp) {
      float w[kRun];
      Format<F>::decode(weights, start + int64_t(r) * kRun, w);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float4 x0 = *reinterpret_cast<const float4*>(&x_tile[t][r * kRun]);
        const float4 x1 = *reinterpret_cast<const float4*>(&x_tile[t][r * kRun + 4]);
        acc[t] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z +
                  w[7] * x1.w;
      }
    }
    if constexpr (kHasTail<F>) {  // F32/F16/BF16 rows whose length is not a multiple of kRun
      for (int c = runs * kRun + lane; c < width; c += kWarp) {
        const float w = Format<F>::element(weights, start + c);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) acc[t] += w * x_tile[t][c];
      }
    }
  }
  if (!active) return;
  const float bias = a.bias != nullptr ? a.bias[row] : 0.0f;
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    const float sum = warp_sum(acc[t]);
    if (lane == 0 && t < a.n) a.out[t * a.out_stride + row] = sum + bias;
  }
}

template <WeightFormat F, int kTokens>
void launch_gemv(const QuantMatmulArgs& args, cudaStream_t stream) {
  const unsigned blocks = unsigned((args.rows + kGemvWarps - 1) / kGemvWarps);
  gemv_kernel<F, kTokens><<<blocks, kGemvThreads, 0, stream>>>(args);
}

template <WeightFormat F>
void gemv(const QuantMatmulArgs& args, cudaStream_t stream) {
  if (args.n <= 1) launch_gemv<F, 1>(args, stream);
  else if (args.n <= 2) launch_gemv<F, 2>(args, stream);
  else if (args.n <= 4) launch_gemv<F, 4>(args, stream);
  else if (args.n <= 8) launch_gemv<F, 8>(args, stream);
  else launch_gemv<F, 16>(args, stream);
}

// ---- prefill: tiled GEMM over a shared-memory tile of dequantized weights ----

constexpr int kTileTokens = 64;
constexpr int kTileRows = 128;
constexpr int kTileK = 32;  // one Q*_0/Q*_1 block, or one eighth of a K-quant super-block
constexpr unsigned kGemmThreads = 256;
constexpr int kThreadTokens = 4;  // a thread's output tile: 4 tokens x (4 + 4) rows
constexpr int kThreadRows = 4;    // ... rows tx*4.. and 64 + tx*4.. (conflict-free float4 reads)
constexpr int kRunsPerRow = kTileK / kRun;
constexpr int64_t kMaxGridY = 65535;

template <WeightFormat F>
__device__ inline void decode_or_zero(const QuantMatmulArgs& a, int64_t row, int64_t first, float* w) {
#pragma unroll
  for (int i = 0; i < kRun; ++i) w[i] = 0.0f;
  if (row >= a.rows) return;
  const uint8_t* weights = static_cast<const uint8_t*>(a.weight) + row * a.row_bytes;
  if (first + kRun <= a.cols) {
    Format<F>::decode(weights, first, w);
  } else if constexpr (kHasTail<F>) {
    for (int i = 0; i < kRun && first + i < a.cols; ++i) w[i] = Format<F>::element(weights, first + i);
  }
}

template <WeightFormat F>
__global__ void __launch_bounds__(kGemmThreads) gemm_kernel(QuantMatmulArgs a) {
  __shared__ float x_tile[kTileTokens][kTileK + 1];                 // [token][k]; +1: conflict-free stores
  __shared__ __align__(16) float w_tile[kTileK][kTileRows + 4];      // [k][row], dequantized
  const int tid = int(threadIdx.x);
  const int tx = tid % 16, ty = tid / 16;
  const int64_t row0 = int64_t(blockIdx.x) * kTileRows;
  const int64_t token0 = int64_t(blockIdx.y) * kTileTokens;
  float acc[kThreadTokens][2 * kThreadRows] = {};

  for (int64_t k0 = 0; k0 < a.cols; k0 += kTileK) {
    for (int i = tid; i < kTileTokens * kTileK; i += int(kGemmThreads)) {
      const int t = i / kTileK, c = i % kTileK;
      const int64_t token = token0 + t, col = k0 + c;
      x_tile[t][c] = token < a.n && col < a.cols ? a.x[token * a.x_stride + col] : 0.0f;
    }
    // Four consecutive threads decode the four runs of one row: neighbouring bytes of the same block.
    for (int i = tid; i < kTileRows * kRunsPerRow; i += int(kGemmThreads)) {
      const int r = i / kRunsPerRow, run = i % kRunsPerRow;
      float w[kRun];
      decode_or_zero<F>(a, row0 + r, k0 + run * kRun, w);
#pragma unroll
      for (int j = 0; j < kRun; ++j) w_tile[run * kRun + j][r] = w[j];
    }
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kTileK; ++k) {
      float x[kThreadTokens];
#pragma unroll
      for (int i = 0; i < kThreadTokens; ++i) x[i] = x_tile[ty * kThreadTokens + i][k];
      const float4 w0 = *reinterpret_cast<const float4*>(&w_tile[k][tx * kThreadRows]);
      const float4 w1 = *reinterpret_cast<const float4*>(&w_tile[k][kTileRows / 2 + tx * kThreadRows]);
      const float w[2 * kThreadRows] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
      for (int i = 0; i < kThreadTokens; ++i) {
#pragma unroll
        for (int j = 0; j < 2 * kThreadRows; ++j) acc[i][j] += x[i] * w[j];
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kThreadTokens; ++i) {
    const int64_t token = token0 + ty * kThreadTokens + i;
    if (token >= a.n) continue;
#pragma unroll
    for (int j = 0; j < 2 * kThreadRows; ++j) {
      const int64_t row = row0 + (j < kThreadRows ? 0 : kTileRows / 2) + tx * kThreadRows + j % kThreadRows;
      if (row < a.rows) a.out[token * a.out_stride + row] = acc[i][j] + (a.bias != nullptr ? a.bias[row] : 0.0f);
    }
  }
}

template <WeightFormat F>
void gemm(const QuantMatmulArgs& args, cudaStream_t stream) {
  const int64_t token_tiles = (args.n + kTileTokens - 1) / kTileTokens;
  if (token_tiles > kMaxGridY) {
    throw std::invalid_argument("llmkit.kernels: quantized_matmul takes at most " +
                                std::to_string(kMaxGridY * kTileTokens) + " tokens per call on CUDA");
  }
  const dim3 grid(unsigned((args.rows + kTileRows - 1) / kTileRows), unsigned(token_tiles));
  gemm_kernel<F><<<grid, kGemmThreads, 0, stream>>>(args);
}

template <WeightFormat F>
void matmul(const QuantMatmulArgs& args, cudaStream_t stream) {
  if (args.n <= kGemvMaxTokens) gemv<F>(args, stream);
  else gemm<F>(args, stream);
}

}  // namespace

void quant_matmul(const QuantMatmulArgs& args, const Launch& launch) {
  if (args.n == 0 || args.rows == 0) return;
  DeviceScope scope(launch.device);
  const cudaStream_t stream = stream_of(launch);
  switch (args.format) {
    case WeightFormat::kF32: matmul<WeightFormat::kF32>(args, stream); break;
    case WeightFormat::kF16: matmul<WeightFormat::kF16>(args, stream); break;
    case WeightFormat::kBF16: matmul<WeightFormat::kBF16>(args, stream); break;
    case WeightFormat::kQ8_0: matmul<WeightFormat::kQ8_0>(args, stream); break;
    case WeightFormat::kQ4_0: matmul<WeightFormat::kQ4_0>(args, stream); break;
    case WeightFormat::kQ4_1: matmul<WeightFormat::kQ4_1>(args, stream); break;
    case WeightFormat::kQ5_0: matmul<WeightFormat::kQ5_0>(args, stream); break;
    case WeightFormat::kQ5_1: matmul<WeightFormat::kQ5_1>(args, stream); break;
    case WeightFormat::kQ4_K: matmul<WeightFormat::kQ4_K>(args, stream); break;
    case WeightFormat::kQ5_K: matmul<WeightFormat::kQ5_K>(args, stream); break;
    case WeightFormat::kQ6_K: matmul<WeightFormat::kQ6_K>(args, stream); break;
    default: throw std::invalid_argument("llmkit.kernels: unknown weight format code " +
                                         std::to_string(int(args.format)));
  }
  check(cudaGetLastError(), "quantized_matmul launch");
}

}  // namespace cuda
}  // namespace llmkit
