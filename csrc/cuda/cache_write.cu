// reshape_and_cache on CUDA. float/16-bit caches and int4: one thread block per token. fp8/int8 (one scale
// per (block, head) that grows as tokens arrive) take four ordered launches: elect a leader token per
// touched block, gather the scale each block needs, grow scales and re-quantize held values (leaders
// only), then write every token. Slots outside the cache are skipped and reported, never written.
#include "cuda/common.cuh"

namespace llmkit {
namespace cuda {

namespace {

constexpr unsigned kThreads = 128;

__device__ inline bool valid_slot(const CacheWriteArgs& a, int64_t token, int64_t* slot, unsigned* errors) {
  *slot = index_at(a.slot_mapping, token);
  if (*slot < 0) return false;
  if (*slot >= a.cache.num_blocks * a.cache.block_size) {
    if (threadIdx.x == 0 && errors != nullptr) report(errors, kBadSlot);
    return false;
  }
  return true;
}

__device__ inline const void* token_row(const TokenMatrix& m, int64_t token) {
  const int64_t bytes = m.dtype == DType::kFloat32 ? 4 : 2;
  return static_cast<const char*>(m.data) + token * m.token_stride * bytes;
}

__global__ void write_plain_kernel(CacheWriteArgs a, DType cache_dtype, unsigned* errors) {
  int64_t slot;
  if (!valid_slot(a, blockIdx.x, &slot, errors)) return;
  const CacheView& c = a.cache;
  const int64_t block = slot / c.block_size, offset = slot % c.block_size, D = c.head_dim;
  for (int which = 0; which < 2; ++which) {
    const TokenMatrix& src = which == 0 ? a.key : a.value;
    void* storage = which == 0 ? c.key : c.value;
    const void* row = token_row(src, blockIdx.x);
    for (int64_t i = threadIdx.x; i < c.num_kv_heads * D; i += blockDim.x) {
      const int64_t h = i / D, d = i % D;
      store_float(storage, cache_dtype, ((block * c.num_kv_heads + h) * c.block_size + offset) * D + d,
                  load_float(row, src.dtype, i));
    }
  }
}

// One warp per (K or V, head, group of 32): lane = element.
__global__ void write_int4_kernel(CacheWriteArgs a, unsigned* errors) {
  int64_t slot;
  if (!valid_slot(a, blockIdx.x, &slot, errors)) return;
  const CacheView& c = a.cache;
  const int64_t block = slot / c.block_size, offset = slot % c.block_size, D = c.head_dim;
  const int64_t groups = D / kInt4Group, lane = threadIdx.x % 32;
  for (int64_t task = threadIdx.x / 32; task < 2 * c.num_kv_heads * groups; task += blockDim.x / 32) {
    const int which = int(task / (c.num_kv_heads * groups));
    const int64_t h = (task / groups) % c.num_kv_heads, g = task % groups;
    const TokenMatrix& src = which == 0 ? a.key : a.value;
    const float x = load_float(token_row(src, blockIdx.x), src.dtype, h * D + g * kInt4Group + lane);
    const __half scale_half = __float2half_rn(__fdiv_rn(warp_max(fabsf(x)), kInt4Max));
    const float scale = __half2float(scale_half);
    const int32_t nibble = int32_t(rintf(clamp_symmetric(safe_divide(x, scale), kInt4Max))) + 8;
    const int32_t high = __shfl_down_sync(0xffffffffu, nibble, 1);
    const int64_t row = (block * c.num_kv_heads + h) * c.block_size + offset;
    uint8_t* storage = static_cast<uint8_t*>(which == 0 ? c.key : c.value);
    __half* scales = static_cast<__half*>(which == 0 ? c.key_scales : c.value_scales);
    if (lane % 2 == 0) storage[row * (D / 2) + g * 16 + lane / 2] = uint8_t(nibble | (high << 4));
    if (lane == 0) scales[row * groups + g] = scale_half;
  }
}

__global__ void elect_leaders_kernel(CacheWriteArgs a, unsigned* leaders, unsigned* errors) {
  const int64_t token = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (token >= a.key.tokens) return;
  const int64_t slot = index_at(a.slot_mapping, token);
  if (slot < 0) return;
  if (slot >= a.cache.num_blocks * a.cache.block_size) {
    report(errors, kBadSlot);
    return;
  }
  atomicMin(&leaders[slot / a.cache.block_size], unsigned(token));
}

// needs[which][leader][head]: the largest amax / qmax among the block's new tokens (float bits, >= 0).
__global__ void gather_needs_kernel(CacheWriteArgs a, const unsigned* leaders, unsigned* needs, int* restarts,
                                    float qmax) {
  int64_t slot;
  if (!valid_slot(a, blockIdx.x, &slot, nullptr)) return;
  const CacheView& c = a.cache;
  const int64_t leader = leaders[slot / c.block_size], H = c.num_kv_heads, D = c.head_dim;
  if (slot % c.block_size == 0 && threadIdx.x == 0) restarts[leader] = 1;
  const int lane = threadIdx.x % 32;
  for (int64_t task = threadIdx.x / 32; task < 2 * H; task += blockDim.x / 32) {
    const int which = int(task / H);
    const int64_t h = task % H;
    const TokenMatrix& src = which == 0 ? a.key : a.value;
    const void* row = token_row(src, blockIdx.x);
    float amax = 0.0f;
    for (int64_t d = lane; d < D; d += 32) amax = fmaxf(amax, fabsf(load_float(row, src.dtype, h * D + d)));
    amax = warp_max(amax);
    if (lane == 0) atomicMax(&needs[(which * a.key.tokens + leader) * H + h], __float_as_uint(__fdiv_rn(amax, qmax)));
  }
}

__global__ void grow_scales_kernel(CacheWriteArgs a, const unsigned* leaders, const unsigned* needs,
                                   const int* restarts) {
  int64_t slot;
  if (!valid_slot(a, blockIdx.x, &slot, nullptr)) return;
  const CacheView& c = a.cache;
  const int64_t block = slot / c.block_size, H = c.num_kv_heads, n = c.block_size * c.head_dim;
  if (leaders[block] != blockIdx.x) return;
  for (int which = 0; which < 2; ++which) {
    float* scales = static_cast<float*>(which == 0 ? c.key_scales : c.value_scales);
    char* storage = static_cast<char*>(which == 0 ? c.key : c.value);
    for (int64_t h = 0; h < H; ++h) {
      const float old = restarts[blockIdx.x] ? 0.0f : scales[block * H + h];
      const float grown = fmaxf(old, __uint_as_float(needs[(which * a.key.tokens + blockIdx.x) * H + h]));
      if (grown > old) {
        char* held = storage + (block * H + h) * n;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
          const int32_t raw = c.format == KvFormat::kFp8E4M3 ? int32_t(uint8_t(held[i])) : int32_t(int8_t(held[i]));
          const float value = __fmul_rn(quantized_to_float(raw, c.format), old);
          held[i] = char(float_to_quantized(safe_divide(value, grown), c.format));
        }
      }
      __syncthreads();  // every thread has read `old` before it is replaced
      if (threadIdx.x == 0) scales[block * H + h] = grown;
    }
  }
}

__global__ void write_scaled_kernel(CacheWriteArgs a) {
  int64_t slot;
  if (!valid_slot(a, blockIdx.x, &slot, nullptr)) return;
  const CacheView& c = a.cache;
  const int64_t block = slot / c.block_size, offset = slot % c.block_size, H = c.num_kv_heads, D = c.head_dim;
  for (int which = 0; which < 2; ++which) {
    const TokenMatrix& src = which == 0 ? a.key : a.value;
    const float* scales = static_cast<const float*>(which == 0 ? c.key_scales : c.value_scales);
    char* storage = static_cast<char*>(which == 0 ? c.key : c.value);
    const void* row = token_row(src, blockIdx.x);
    for (int64_t i = threadIdx.x; i < H * D; i += blockDim.x) {
      const int64_t h = i / D, d = i % D;
      const float y = safe_divide(load_float(row, src.dtype, i), scales[block * H + h]);
      storage[((block * H + h) * c.block_size + offset) * D + d] = char(float_to_quantized(y, c.format));
    }
  }
}

}  // namespace

void cache_write(const CacheWriteArgs& args, const Launch& launch) {
  DeviceScope scope(launch.device);
  cudaStream_t stream = stream_of(launch);
  unsigned* errors = device_error_word(launch.device);
  const CacheView& c = args.cache;
  const unsigned tokens = unsigned(args.key.tokens);
  if (c.format == KvFormat::kInt4) {
    write_int4_kernel<<<tokens, kThreads, 0, stream>>>(args, errors);
  } else if (!has_block_scales(c.format)) {
    const DType dtype = c.format == KvFormat::kFloat32    ? DType::kFloat32
                        : c.format == KvFormat::kBFloat16 ? DType::kBFloat16
                                                          : DType::kFloat16;
    write_plain_kernel<<<tokens, kThreads, 0, stream>>>(args, dtype, errors);
  } else {
    const float qmax = c.format == KvFormat::kFp8E4M3 ? kFp8Max : kInt8Max;
    StreamBuffer leaders(sizeof(unsigned) * c.num_blocks, stream);
    StreamBuffer needs(sizeof(unsigned) * 2 * args.key.tokens * c.num_kv_heads, stream);
    StreamBuffer restarts(sizeof(int) * args.key.tokens, stream);
    check(cudaMemsetAsync(leaders.as<unsigned>(), 0xff, sizeof(unsigned) * c.num_blocks, stream), "cudaMemsetAsync");
    check(cudaMemsetAsync(needs.as<unsigned>(), 0, sizeof(unsigned) * 2 * args.key.tokens * c.num_kv_heads, stream),
          "cudaMemsetAsync");
    check(cudaMemsetAsync(restarts.as<int>(), 0, sizeof(int) * args.key.tokens, stream), "cudaMemsetAsync");
    elect_leaders_kernel<<<blocks_for(tokens, 256), 256, 0, stream>>>(args, leaders.as<unsigned>(), errors);
    gather_needs_kernel<<<tokens, kThreads, 0, stream>>>(args, leaders.as<unsigned>(), needs.as<unsigned>(),
                                                         restarts.as<int>(), qmax);
    grow_scales_kernel<<<tokens, kThreads, 0, stream>>>(args, leaders.as<unsigned>(), needs.as<unsigned>(),
                                                        restarts.as<int>());
    write_scaled_kernel<<<tokens, kThreads, 0, stream>>>(args);
  }
  check(cudaGetLastError(), "reshape_and_cache launch");
}

}  // namespace cuda
}  // namespace llmkit
