// Whole-block KV quantization on CUDA: one thread block per (block, head) for fp8/int8, one warp per
// group of 32 for int4. Same arithmetic as kv_quant.py (IEEE division, round to nearest even).
#include "cuda/common.cuh"

namespace llmkit {
namespace cuda {

namespace {

constexpr unsigned kThreads = 256;

__device__ float block_max(float v, float* shared) {
  v = warp_max(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0f;
  if (warp == 0) v = warp_max(v);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

__global__ void quantize_scaled_kernel(QuantizeArgs a) {
  __shared__ float shared[32];
  const int64_t pair = blockIdx.x, n = a.block_size * a.head_dim;
  float local = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) local = fmaxf(local, fabsf(load_float(a.values, a.values_dtype, pair * n + i)));
  const float qmax = a.format == KvFormat::kFp8E4M3 ? kFp8Max : kInt8Max;
  const float scale = __fdiv_rn(block_max(local, shared), qmax);
  if (threadIdx.x == 0) static_cast<float*>(a.scales)[pair] = scale;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int32_t q = float_to_quantized(safe_divide(load_float(a.values, a.values_dtype, pair * n + i), scale), a.format);
    if (a.format == KvFormat::kFp8E4M3) static_cast<uint8_t*>(a.storage)[pair * n + i] = uint8_t(q);
    else static_cast<int8_t*>(a.storage)[pair * n + i] = int8_t(q);
  }
}

// One warp per group of 32 elements: lane = element.
__global__ void quantize_int4_kernel(QuantizeArgs a, int64_t groups) {
  const int64_t group = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (group >= groups) return;
  const int lane = threadIdx.x % 32;
  const float x = load_float(a.values, a.values_dtype, group * kInt4Group + lane);
  const __half scale_half = __float2half_rn(__fdiv_rn(warp_max(fabsf(x)), kInt4Max));
  const float scale = __half2float(scale_half);
  const int32_t nibble = int32_t(rintf(clamp_symmetric(safe_divide(x, scale), kInt4Max))) + 8;
  const int32_t high = __shfl_down_sync(0xffffffffu, nibble, 1);
  if (lane % 2 == 0) static_cast<uint8_t*>(a.storage)[group * 16 + lane / 2] = uint8_t(nibble | (high << 4));
  if (lane == 0) static_cast<__half*>(a.scales)[group] = scale_half;
}

__global__ void dequantize_kernel(QuantizeArgs a, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float* out = static_cast<float*>(a.values);
  if (a.format == KvFormat::kInt4) {
    const uint8_t byte = static_cast<const uint8_t*>(a.storage)[i / 2];
    const int32_t nibble = (i % 2) ? (byte >> 4) : (byte & 0x0f);
    out[i] = float(nibble - 8) * __half2float(static_cast<const __half*>(a.scales)[i / kInt4Group]);
  } else {
    const int32_t raw = a.format == KvFormat::kFp8E4M3 ? int32_t(static_cast<const uint8_t*>(a.storage)[i])
                                                        : int32_t(static_cast<const int8_t*>(a.storage)[i]);
    out[i] = quantized_to_float(raw, a.format) * static_cast<const float*>(a.scales)[i / (a.block_size * a.head_dim)];
  }
}

}  // namespace

void quantize_kv(const QuantizeArgs& args, const Launch& launch) {
  DeviceScope scope(launch.device);
  if (args.format == KvFormat::kInt4) {
    const int64_t groups = args.num_blocks * args.heads * args.block_size * args.head_dim / kInt4Group;
    quantize_int4_kernel<<<blocks_for(groups, kThreads / 32), kThreads, 0, stream_of(launch)>>>(args, groups);
  } else {
    quantize_scaled_kernel<<<unsigned(args.num_blocks * args.heads), kThreads, 0, stream_of(launch)>>>(args);
  }
  check(cudaGetLastError(), "quantize_kv launch");
}

void dequantize_kv(const QuantizeArgs& args, const Launch& launch) {
  DeviceScope scope(launch.device);
  const int64_t n = args.num_blocks * args.heads * args.block_size * args.head_dim;
  dequantize_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream_of(launch)>>>(args, n);
  check(cudaGetLastError(), "dequantize_kv launch");
}

}  // namespace cuda
}  // namespace llmkit
