// Device helpers shared by the CUDA kernels: conversions (bit for bit as the CPU and torch), index
// reads, error reporting, and launch plumbing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/kernel_args.h"
#include "cuda/launch.h"

namespace llmkit {
namespace cuda {

void check(cudaError_t status, const char* what);
// The mapped error word of `device` as a device pointer.
unsigned* device_error_word(int device);
// The number of streaming multiprocessors of `device`.
int multiprocessor_count(int device);

// Makes `device` current for the scope (torch may call from a thread whose current device differs).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t stream_of(const Launch& launch) { return reinterpret_cast<cudaStream_t>(launch.stream); }

inline unsigned blocks_for(int64_t work, unsigned threads) { return unsigned((work + threads - 1) / threads); }

__device__ inline int64_t index_at(const IndexView& v, int64_t i) {
  return v.wide ? static_cast<const int64_t*>(v.data)[i] : static_cast<const int32_t*>(v.data)[i];
}

__device__ inline void report(unsigned* errors, unsigned bit) { atomicOr(errors, bit); }

__device__ inline float load_float(const void* p, DType dtype, int64_t i) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(p)[i];
  if (dtype == DType::kBFloat16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return __half2float(static_cast<const __half*>(p)[i]);
}

__device__ inline void store_float(void* p, DType dtype, int64_t i, float v) {
  if (dtype == DType::kFloat32) static_cast<float*>(p)[i] = v;
  else if (dtype == DType::kBFloat16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else static_cast<__half*>(p)[i] = __float2half_rn(v);
}

__device__ inline float safe_divide(float x, float scale) { return scale > 0.0f ? __fdiv_rn(x, scale) : 0.0f; }

__device__ inline float clamp_symmetric(float x, float limit) { return x < -limit ? -limit : (x > limit ? limit : x); }

// float8 e4m3fn, round to nearest even; the same integer recipe as the CPU kernels and torch.
__device__ inline uint8_t float_to_fp8_e4m3(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u ^ sign;
  uint32_t magnitude;
  if (a >= (1087u << 20)) {
    magnitude = a > 0x7f800000u ? 0x7fu : 0x7eu;
  } else if (a < (121u << 23)) {
    const uint32_t magic = 141u << 23;
    magnitude = __float_as_uint(__fadd_rn(__uint_as_float(a), __uint_as_float(magic))) - magic;
  } else {
    magnitude = (a + (uint32_t(7 - 127) << 23) + 0x7ffffu + ((a >> 20) & 1u)) >> 20;
  }
  return uint8_t(magnitude | (sign >> 24));
}

__device__ inline float fp8_e4m3_to_float(uint8_t q) {
  const uint32_t b = q & 0x7fu;
  const uint32_t exponent = b >> 3, mantissa = b & 7u;
  float magnitude = exponent == 0 ? float(mantissa) * 0x1p-9f : __uint_as_float(((exponent + 120u) << 23) | (mantissa << 20));
  if (b == 0x7fu) magnitude = __uint_as_float(0x7fc00000u);
  return (q & 0x80u) ? -magnitude : magnitude;
}

__device__ inline float quantized_to_float(int32_t raw, KvFormat format) {
  return format == KvFormat::kFp8E4M3 ? fp8_e4m3_to_float(uint8_t(raw)) : float(int8_t(raw));
}

__device__ inline int32_t float_to_quantized(float y, KvFormat format) {
  if (format == KvFormat::kFp8E4M3) return float_to_fp8_e4m3(clamp_symmetric(y, kFp8Max));
  return int32_t(rintf(clamp_symmetric(y, kInt8Max)));
}

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Scratch device memory from the stream-ordered allocator, freed in stream order.
class StreamBuffer {
 public:
  StreamBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes > 0) check(cudaMallocAsync(&data_, bytes, stream), "cudaMallocAsync");
  }
  ~StreamBuffer() {
    if (data_ != nullptr) cudaFreeAsync(data_, stream_);
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace cuda
}  // namespace llmkit
