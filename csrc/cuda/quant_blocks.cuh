// Decoding of GGUF weight blocks, eight elements at a time, for the CUDA quantized matmuls.
// Host and device code (no CUDA runtime needed) so that tests/kernels/test_cuda_quant_blocks.py can check
// every format against gguf-py's dequantize on a machine without a GPU. The layouts and the order of the
// float operations follow gguf-py's quants.py, so host results equal it bit for bit.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define LLMKIT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LLMKIT_HOST_DEVICE inline
#endif

namespace llmkit {
namespace quant_blocks {

// Every format is decoded in runs of 8 consecutive elements of a row; a run never crosses a block
// (quantized blocks hold 32 or 256 elements) and shares one scale (and minimum) within its block.
constexpr int kRun = 8;
constexpr int kQK = 256;  // elements of a K-quant super-block

LLMKIT_HOST_DEVICE float uint_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// IEEE half (as its 16 bits) to float, exactly (subnormals, infinities and NaNs included).
LLMKIT_HOST_DEVICE float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return uint_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return uint_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  const float magnitude = float(mantissa) * 0x1p-24f;  // subnormal or zero: exact in float
  return sign ? -magnitude : magnitude;
#endif
}

LLMKIT_HOST_DEVICE float bf16_to_float(uint16_t b) { return uint_to_float(uint32_t(b) << 16); }

// Little-endian loads from byte addresses (GGUF blocks are 18, 20, 22, 24, 34, 144, 176 or 210 bytes:
// their fields are not aligned).
LLMKIT_HOST_DEVICE uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

LLMKIT_HOST_DEVICE uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

LLMKIT_HOST_DEVICE float load_half(const uint8_t* p) { return half_to_float(load_u16(p)); }

// The 6-bit scale and minimum of sub-block j (0..7) of a Q4_K / Q5_K super-block (gguf-py Q4_K.get_scale_min).
LLMKIT_HOST_DEVICE void k_scale_min(const uint8_t* scales, int j, int& scale, int& minimum) {
  if (j < 4) {
    scale = scales[j] & 0x3f;
    minimum = scales[j + 4] & 0x3f;
  } else {
    scale = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 2) & 0x30);
    minimum = (scales[j + 4] >> 4) | ((scales[j] >> 2) & 0x30);
  }
}

// Format<F>::decode(row, first, out): out[i] = dequantized element first + i of the stored row, for
// i < kRun; `first` is a multiple of kRun.
template <WeightFormat F>
struct Format;

template <>
struct Format<WeightFormat::kF32> {
  static constexpr int kBlockElems = 1, kBlockBytes = 4;
  LLMKIT_HOST_DEVICE static float element(const uint8_t* row, int64_t e) { return uint_to_float(load_u32(row + 4 * e)); }
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    for (int i = 0; i < kRun; ++i) out[i] = element(row, first + i);
  }
};

template <>
struct Format<WeightFormat::kF16> {
  static constexpr int kBlockElems = 1, kBlockBytes = 2;
  LLMKIT_HOST_DEVICE static float element(const uint8_t* row, int64_t e) { return load_half(row + 2 * e); }
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    for (int i = 0; i < kRun; ++i) out[i] = element(row, first + i);
  }
};

template <>
struct Format<WeightFormat::kBF16> {
  static constexpr int kBlockElems = 1, kBlockBytes = 2;
  LLMKIT_HOST_DEVICE static float element(const uint8_t* row, int64_t e) { return bf16_to_float(load_u16(row + 2 * e)); }
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    for (int i = 0; i < kRun; ++i) out[i] = element(row, first + i);
  }
};

// {half d; int8 qs[32]}: qs * d.
template <>
struct Format<WeightFormat::kQ8_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 34;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int offset = int(first % kBlockElems);
    const float d = load_half(block);
    for (int i = 0; i < kRun; ++i) out[i] = float(int8_t(block[2 + offset + i])) * d;
  }
};

// The 4-bit quant of element `offset + i` of a 32-element block: low nibbles hold 0..15, high nibbles 16..31.
LLMKIT_HOST_DEVICE int nibble(const uint8_t* qs, int offset, int i) {
  return offset < 16 ? qs[offset + i] & 0x0f : qs[offset - 16 + i] >> 4;
}

// {half d; u8 qs[16]}: (q - 8) * d.
template <>
struct Format<WeightFormat::kQ4_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 18;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int offset = int(first % kBlockElems);
    const float d = load_half(block);
    for (int i = 0; i < kRun; ++i) out[i] = d * float(nibble(block + 2, offset, i) - 8);
  }
};

// {half d; half m; u8 qs[16]}: q * d + m.
template <>
struct Format<WeightFormat::kQ4_1> {
  static constexpr int kBlockElems = 32, kBlockBytes = 20;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int offset = int(first % kBlockElems);
    const float d = load_half(block), m = load_half(block + 2);
    for (int i = 0; i < kRun; ++i) out[i] = d * float(nibble(block + 4, offset, i)) + m;
  }
};

// {half d; u8 qh[4]; u8 qs[16]}: the fifth bit of element j is bit j of qh (little-endian); (q - 16) * d.
template <>
struct Format<WeightFormat::kQ5_0> {
  static constexpr int kBlockElems = 32, kBlockBytes = 22;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int offset = int(first % kBlockElems);
    const float d = load_half(block);
    const uint32_t high = load_u32(block + 2) >> offset;
    for (int i = 0; i < kRun; ++i) {
      const int q = nibble(block + 6, offset, i) | int(((high >> i) & 1u) << 4);
      out[i] = d * float(q - 16);
    }
  }
};

// {half d; half m; u8 qh[4]; u8 qs[16]}: q * d + m.
template <>
struct Format<WeightFormat::kQ5_1> {
  static constexpr int kBlockElems = 32, kBlockBytes = 24;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int offset = int(first % kBlockElems);
    const float d = load_half(block), m = load_half(block + 2);
    const uint32_t high = load_u32(block + 4) >> offset;
    for (int i = 0; i < kRun; ++i) {
      const int q = nibble(block + 8, offset, i) | int(((high >> i) & 1u) << 4);
      out[i] = d * float(q) + m;
    }
  }
};

// {half d; half dmin; u8 scales[12]; u8 qs[128]}: eight sub-blocks of 32 with 6-bit scales and minimums.
// Element e = 64 g + 32 h + l is nibble h of qs[32 g + l], in sub-block 2 g + h.
template <>
struct Format<WeightFormat::kQ4_K> {
  static constexpr int kBlockElems = kQK, kBlockBytes = 144;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int e = int(first % kBlockElems);
    const int sub = e / 32, shift = 4 * (sub & 1);
    int scale, minimum;
    k_scale_min(block + 4, sub, scale, minimum);
    const float d = load_half(block) * float(scale), dm = load_half(block + 2) * float(minimum);
    const uint8_t* qs = block + 16 + (e / 64) * 32 + e % 32;
    for (int i = 0; i < kRun; ++i) out[i] = d * float((qs[i] >> shift) & 0x0f) - dm;
  }
};

// {half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus a fifth bit, bit `sub` of qh[l].
template <>
struct Format<WeightFormat::kQ5_K> {
  static constexpr int kBlockElems = kQK, kBlockBytes = 176;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int e = int(first % kBlockElems);
    const int sub = e / 32, shift = 4 * (sub & 1), l = e % 32;
    int scale, minimum;
    k_scale_min(block + 4, sub, scale, minimum);
    const float d = load_half(block) * float(scale), dm = load_half(block + 2) * float(minimum);
    const uint8_t* qh = block + 16 + l;
    const uint8_t* qs = block + 48 + (e / 64) * 32 + l;
    for (int i = 0; i < kRun; ++i) {
      const int q = ((qs[i] >> shift) & 0x0f) | (((qh[i] >> sub) & 1) << 4);
      out[i] = d * float(q) - dm;
    }
  }
};

// {u8 ql[128]; u8 qh[64]; int8 scales[16]; half d}: sixteen sub-blocks of 16 with int8 scales.
// Element e = 128 h + r (r < 128) is nibble r / 64 of ql[64 h + r % 64] plus two high bits, bits 2 (r / 32)
// of qh[32 h + r % 32]; value (q - 32) * d * scales[e / 16].
template <>
struct Format<WeightFormat::kQ6_K> {
  static constexpr int kBlockElems = kQK, kBlockBytes = 210;
  LLMKIT_HOST_DEVICE static void decode(const uint8_t* row, int64_t first, float* out) {
    const uint8_t* block = row + first / kBlockElems * kBlockBytes;
    const int e = int(first % kBlockElems);
    const int half = e / 128, r = e % 128;
    const float d = load_half(block + 208) * float(int8_t(block[192 + e / 16]));
    const uint8_t* ql = block + 64 * half + r % 64;
    const uint8_t* qh = block + 128 + 32 * half + r % 32;
    const int low_shift = 4 * (r / 64), high_shift = 2 * (r / 32);
    for (int i = 0; i < kRun; ++i) {
      const int q = ((ql[i] >> low_shift) & 0x0f) | (((qh[i] >> high_shift) & 3) << 4);
      out[i] = d * float(q - 32);
    }
  }
};

// Whether rows of this format may end in a partial run (only the one-element "blocks" of F32/F16/BF16).
template <WeightFormat F>
constexpr bool kHasTail = Format<F>::kBlockElems == 1;

}  // namespace quant_blocks
}  // namespace llmkit
