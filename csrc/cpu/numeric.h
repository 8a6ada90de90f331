// Scalar conversions and math written as straight-line selects so that loops over them vectorize.
// Included inside an ISA namespace (see isa_namespace.h): each instruction-set build gets its own copy.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

static inline uint32_t float_bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return u;
}

static inline float bits_float(uint32_t u) {
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

static inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

// Round to nearest even; NaN becomes the canonical 0x7fc0 (as torch does).
static inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7fffffffu) > 0x7f800000u ? uint16_t(0x7fc0) : uint16_t(rounded);
}

static inline float half_to_float(uint16_t h) {
  const uint32_t shifted = uint32_t(h & 0x7fffu) << 13;
  const uint32_t exponent = shifted & 0x0f800000u;
  const uint32_t normal = shifted + (112u << 23);
  const uint32_t special = normal + (112u << 23);  // inf / NaN: exponent all ones
  const float subnormal = bits_float(normal + (1u << 23)) - bits_float(113u << 23);
  const uint32_t magnitude = exponent == 0x0f800000u ? special : (exponent == 0 ? float_bits(subnormal) : normal);
  return bits_float(magnitude | (uint32_t(h & 0x8000u) << 16));
}

// IEEE binary16 with round to nearest even (what torch's .to(torch.float16) does).
static inline uint16_t float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u ^ sign;
  const uint32_t overflow = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const uint32_t subnormal = float_bits(bits_float(a) + bits_float(denorm_magic)) - denorm_magic;
  const uint32_t normal = (a + (uint32_t(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const uint32_t magnitude = a >= (143u << 23) ? overflow : (a < (113u << 23) ? subnormal : normal);
  return uint16_t(magnitude | (sign >> 16));
}

// float8 e4m3fn with round to nearest even, bit for bit what torch's .to(torch.float8_e4m3fn) gives.
static inline uint8_t float_to_fp8_e4m3(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t a = u ^ sign;
  const uint32_t overflow = a > 0x7f800000u ? 0x7fu : 0x7eu;  // NaN stays NaN, larger values saturate
  const uint32_t denorm_magic = 141u << 23;
  const uint32_t subnormal = float_bits(bits_float(a) + bits_float(denorm_magic)) - denorm_magic;
  const uint32_t normal = (a + (uint32_t(7 - 127) << 23) + 0x7ffffu + ((a >> 20) & 1u)) >> 20;
  const uint32_t magnitude = a >= (1087u << 20) ? overflow : (a < (121u << 23) ? subnormal : normal);
  return uint8_t(magnitude | (sign >> 24));
}

static inline float fp8_e4m3_to_float(uint8_t q) {
  const uint32_t b = q & 0x7fu;
  const uint32_t exponent = b >> 3;
  const uint32_t mantissa = b & 7u;
  const float normal = bits_float(((exponent + 120u) << 23) | (mantissa << 20));
  const float subnormal = float(int32_t(mantissa)) * 0x1p-9f;
  const uint32_t magnitude = b == 0x7fu ? 0x7fc00000u : float_bits(exponent == 0 ? subnormal : normal);
  return bits_float(magnitude | (uint32_t(q & 0x80u) << 24));
}

// Round half to even for |x| <= 2^22 (inputs here are clamped first), without relying on SSE4.1.
static inline float round_even(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  return (x + magic) - magic;
}

// NaN-propagating clamp, as torch.clamp.
static inline float clamp_symmetric(float x, float limit) { return x < -limit ? -limit : (x > limit ? limit : x); }

// x / scale, and 0 where the scale is not positive (an all-zero block or group).
static inline float safe_divide(float x, float scale) { return scale > 0.0f ? x / scale : 0.0f; }

static inline float load_as_float(const void* p, DType dtype, int64_t i) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(p)[i];
  if (dtype == DType::kBFloat16) return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  return half_to_float(static_cast<const uint16_t*>(p)[i]);
}

static inline void store_from_float(void* p, DType dtype, int64_t i, float v) {
  if (dtype == DType::kFloat32) static_cast<float*>(p)[i] = v;
  else if (dtype == DType::kBFloat16) static_cast<uint16_t*>(p)[i] = float_to_bf16(v);
  else static_cast<uint16_t*>(p)[i] = float_to_half(v);
}

// n elements of any float dtype -> float32 (the loops are split per dtype so each vectorizes).
static inline void convert_to_float(const void* src, DType dtype, float* dst, int64_t n) {
  if (dtype == DType::kFloat32) {
    const float* s = static_cast<const float*>(src);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = s[i];
  } else if (dtype == DType::kBFloat16) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]);
  }
}

static inline void convert_from_float(const float* src, DType dtype, void* dst, int64_t n) {
  if (dtype == DType::kFloat32) {
    float* d = static_cast<float*>(dst);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = src[i];
  } else if (dtype == DType::kBFloat16) {
    uint16_t* d = static_cast<uint16_t*>(dst);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
  } else {
    uint16_t* d = static_cast<uint16_t*>(dst);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]);
  }
}

// exp(x) for x <= 0 (softmax arguments): Cody-Waite reduction and a degree-6 polynomial, ~1 ulp; 0 below -87.
static inline float exp_nonpositive(float x) {
  const float clamped = x < -87.0f ? -87.0f : x;
  const float k = round_even(clamped * 1.44269504088896341f);
  float r = clamped - k * 0.693145751953125f;
  r = r - k * 1.428606765330187045e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float two_k = bits_float(uint32_t(int32_t(k) + 127) << 23);
  return x < -87.0f ? 0.0f : e * two_k;
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
