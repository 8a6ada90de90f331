// KV quantization on the CPU, bit for bit what llmkit/core/ops/kv_quant.py computes:
// whole-block quantize/dequantize and reshape_and_cache (with per-(block, head) scale growth).
#pragma once

#include <cstdint>
#include <cstdlib>

#include "cpu/numeric.h"
#include "cpu/thread_pool.h"

namespace llmkit {
namespace LLMKIT_CPU_ISA {

static inline float format_max(KvFormat f) { return f == KvFormat::kFp8E4M3 ? kFp8Max : kInt8Max; }

static inline float abs_max(const float* x, int64_t n) {
  float m = 0.0f;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) {
    const float a = x[i] < 0.0f ? -x[i] : x[i];
    m = a > m ? a : m;
  }
  return m;
}

// storage[i] = quantize(x[i] / scale) for the per-block formats (fp8 as uint8 bits, int8).
static inline void quantize_block_scaled(const float* x, float scale, KvFormat f, void* storage, int64_t n) {
  if (f == KvFormat::kFp8E4M3) {
    uint8_t* q = static_cast<uint8_t*>(storage);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) q[i] = float_to_fp8_e4m3(clamp_symmetric(safe_divide(x[i], scale), kFp8Max));
  } else {
    int8_t* q = static_cast<int8_t*>(storage);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      q[i] = int8_t(int32_t(round_even(clamp_symmetric(safe_divide(x[i], scale), kInt8Max))));
    }
  }
}

static inline void dequantize_block_scaled(const void* storage, float scale, KvFormat f, float* x, int64_t n) {
  if (f == KvFormat::kFp8E4M3) {
    const uint8_t* q = static_cast<const uint8_t*>(storage);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = fp8_e4m3_to_float(q[i]) * scale;
  } else {
    const int8_t* q = static_cast<const int8_t*>(storage);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = float(q[i]) * scale;
  }
}

// One int4 group of 32 values: its float16 scale (amax / 7, rounded to half) and 16 packed bytes.
static inline uint16_t quantize_int4_group(const float* x, uint8_t* packed) {
  const uint16_t scale_bits = float_to_half(abs_max(x, kInt4Group) / kInt4Max);
  const float scale = half_to_float(scale_bits);
  uint8_t nibbles[kInt4Group];
#pragma omp simd
  for (int e = 0; e < kInt4Group; ++e) {
    nibbles[e] = uint8_t(int32_t(round_even(clamp_symmetric(safe_divide(x[e], scale), kInt4Max))) + 8);
  }
#pragma omp simd
  for (int j = 0; j < kInt4Group / 2; ++j) packed[j] = uint8_t(nibbles[2 * j] | (nibbles[2 * j + 1] << 4));
  return scale_bits;
}

static inline void dequantize_int4_group(const uint8_t* packed, uint16_t scale_bits, float* x) {
  const float scale = half_to_float(scale_bits);
#pragma omp simd
  for (int e = 0; e < kInt4Group; ++e) {
    const uint8_t byte = packed[e >> 1];
    x[e] = float(((e & 1) ? (byte >> 4) : (byte & 0x0f)) - 8) * scale;
  }
}

static void quantize_kv(const QuantizeArgs& a, int num_threads) {
  const int64_t D = a.head_dim;
  const int64_t pairs = a.num_blocks * a.heads;  // one (block, head) per iteration
  const int64_t elements = a.block_size * D;
  const int64_t value_bytes = a.values_dtype == DType::kFloat32 ? 4 : 2;
  const int threads = pairs * elements > (1 << 15) ? num_threads : 1;
  cpu::parallel_for_ranges(pairs, 1, threads, [&](int64_t begin, int64_t end) {
    float* x = static_cast<float*>(std::aligned_alloc(64, ((elements * 4 + 63) / 64) * 64));
    for (int64_t pair = begin; pair < end; ++pair) {
      convert_to_float(static_cast<const char*>(a.values) + pair * elements * value_bytes, a.values_dtype, x, elements);
      if (a.format == KvFormat::kInt4) {
        uint8_t* packed = static_cast<uint8_t*>(a.storage) + pair * elements / 2;
        uint16_t* scales = static_cast<uint16_t*>(a.scales) + pair * elements / kInt4Group;
        for (int64_t g = 0; g < elements / kInt4Group; ++g) {
          scales[g] = quantize_int4_group(x + g * kInt4Group, packed + g * (kInt4Group / 2));
        }
      } else {
        const float scale = abs_max(x, elements) / format_max(a.format);
        static_cast<float*>(a.scales)[pair] = scale;
        quantize_block_scaled(x, scale, a.format, static_cast<char*>(a.storage) + pair * elements, elements);
      }
    }
    std::free(x);
  });
}

static void dequantize_kv(const QuantizeArgs& a, int num_threads) {
  const int64_t pairs = a.num_blocks * a.heads;
  const int64_t elements = a.block_size * a.head_dim;
  const int threads = pairs * elements > (1 << 15) ? num_threads : 1;
  cpu::parallel_for_dynamic(pairs, threads, [&](int64_t pair) {
    float* x = static_cast<float*>(a.values) + pair * elements;
    if (a.format == KvFormat::kInt4) {
      const uint8_t* packed = static_cast<const uint8_t*>(a.storage) + pair * elements / 2;
      const uint16_t* scales = static_cast<const uint16_t*>(a.scales) + pair * elements / kInt4Group;
      for (int64_t g = 0; g < elements / kInt4Group; ++g) {
        dequantize_int4_group(packed + g * (kInt4Group / 2), scales[g], x + g * kInt4Group);
      }
    } else {
      dequantize_block_scaled(static_cast<const char*>(a.storage) + pair * elements,
                              static_cast<const float*>(a.scales)[pair], a.format, x, elements);
    }
  });
}

static inline const char* token_row(const TokenMatrix& m, int64_t token, int64_t head, int64_t D) {
  const int64_t bytes = m.dtype == DType::kFloat32 ? 4 : 2;
  return static_cast<const char*>(m.data) + (token * m.token_stride + head * D) * bytes;
}

// float / 16-bit caches and int4: every kept token is written independently.
static void write_tokens(const CacheWriteArgs& a, int num_threads) {
  const CacheView& c = a.cache;
  const int64_t D = c.head_dim, H = c.num_kv_heads;
  const DType cache_dtype = c.format == KvFormat::kFloat32    ? DType::kFloat32
                            : c.format == KvFormat::kBFloat16 ? DType::kBFloat16
                                                              : DType::kFloat16;
  const int threads = a.key.tokens * H * D > (1 << 15) ? num_threads : 1;
  cpu::parallel_for_ranges(a.key.tokens, 1, threads, [&](int64_t begin, int64_t end) {
    float row[kCpuMaxHeadDim];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t slot = a.slot_mapping.at(t);
      if (slot < 0) continue;
      const int64_t block = slot / c.block_size, offset = slot % c.block_size;
      for (int which = 0; which < 2; ++which) {
        const TokenMatrix& src = which == 0 ? a.key : a.value;
        void* storage = which == 0 ? c.key : c.value;
        void* scales = which == 0 ? c.key_scales : c.value_scales;
        for (int64_t h = 0; h < H; ++h) {
          const int64_t row0 = (block * H + h) * c.block_size + offset;
          convert_to_float(token_row(src, t, h, D), src.dtype, row, D);
          if (c.format == KvFormat::kInt4) {
            uint8_t* packed = static_cast<uint8_t*>(storage) + row0 * (D / 2);
            uint16_t* group_scales = static_cast<uint16_t*>(scales) + row0 * (D / kInt4Group);
            for (int64_t g = 0; g < D / kInt4Group; ++g) {
              group_scales[g] = quantize_int4_group(row + g * kInt4Group, packed + g * (kInt4Group / 2));
            }
          } else {
            const int64_t bytes = cache_dtype == DType::kFloat32 ? 4 : 2;
            convert_from_float(row, cache_dtype, static_cast<char*>(storage) + row0 * D * bytes, D);
          }
        }
      }
    }
  });
}

// fp8 / int8: per (touched block, head, K or V) grow the scale to cover the new tokens, re-quantize what
// the block holds when it grew (a write at offset 0 restarts the block), then write the new tokens.
// token_order lists kept tokens grouped by block (ascending token index inside a group).
static void write_block_scaled(const CacheWriteArgs& a, const int64_t* token_order, const int64_t* group_starts,
                               int64_t num_groups, int num_threads) {
  const CacheView& c = a.cache;
  const int64_t D = c.head_dim, H = c.num_kv_heads, bs = c.block_size;
  const float qmax = format_max(c.format);
  const int64_t tasks = num_groups * H * 2;
  const int threads = tasks * bs * D > (1 << 15) ? num_threads : 1;
  cpu::parallel_for_ranges(tasks, 1, threads, [&](int64_t task_begin, int64_t task_end) {
    float* held = static_cast<float*>(std::aligned_alloc(64, ((bs * D * 4 + 63) / 64) * 64));
    float row[kCpuMaxHeadDim];
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t group = task / (H * 2), h = (task / 2) % H, which = task % 2;
      const TokenMatrix& src = which == 0 ? a.key : a.value;
      char* storage = static_cast<char*>(which == 0 ? c.key : c.value);
      float* scales = static_cast<float*>(which == 0 ? c.key_scales : c.value_scales);
      const int64_t first = group_starts[group], last = group_starts[group + 1];
      const int64_t block = a.slot_mapping.at(token_order[first]) / bs;
      float needed = 0.0f;
      bool restarted = false;
      for (int64_t i = first; i < last; ++i) {
        const int64_t t = token_order[i];
        convert_to_float(token_row(src, t, h, D), src.dtype, row, D);
        const float token_scale = abs_max(row, D) / qmax;
        needed = token_scale > needed ? token_scale : needed;
        restarted = restarted || a.slot_mapping.at(t) % bs == 0;
      }
      const int64_t pair = block * H + h;
      const float old = restarted ? 0.0f : scales[pair];
      const float grown = needed > old ? needed : old;
      char* block_storage = storage + pair * bs * D;
      if (grown > old) {
        dequantize_block_scaled(block_storage, old, c.format, held, bs * D);
        quantize_block_scaled(held, grown, c.format, block_storage, bs * D);
      }
      scales[pair] = grown;
      for (int64_t i = first; i < last; ++i) {
        const int64_t t = token_order[i];
        convert_to_float(token_row(src, t, h, D), src.dtype, row, D);
        quantize_block_scaled(row, grown, c.format, block_storage + (a.slot_mapping.at(t) % bs) * D, D);
      }
    }
    std::free(held);
  });
}

static void cache_write(const CacheWriteArgs& a, const int64_t* token_order, const int64_t* group_starts,
                        int64_t num_groups, int num_threads) {
  if (has_block_scales(a.cache.format)) {
    write_block_scaled(a, token_order, group_starts, num_groups, num_threads);
  } else {
    write_tokens(a, num_threads);
  }
}

}  // namespace LLMKIT_CPU_ISA
}  // namespace llmkit
