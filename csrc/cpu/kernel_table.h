// The CPU kernels of one instruction-set build, and run-time selection of the best build.
#pragma once

#include "common/kernel_args.h"

namespace llmkit {

struct PackedInt8Weight;  // cpu/int8_repack.h

namespace cpu {

struct KernelTable {
  const char* isa;
  void (*attention)(const AttentionArgs& args, int num_threads);
  void (*cache_write)(const CacheWriteArgs& args, const int64_t* token_order, const int64_t* group_starts,
                      int64_t num_groups, int num_threads);
  void (*quantize)(const QuantizeArgs& args, int num_threads);
  void (*dequantize)(const QuantizeArgs& args, int num_threads);
  void (*apply_bitmask)(const BitmaskArgs& args, int num_threads);
  void (*quant_matmul)(const QuantMatmulArgs& args, int num_threads);
  // Rows [row_begin, row_end) of the output only, on the calling thread (row_begin a multiple of 4).
  void (*quant_matmul_rows)(const QuantMatmulArgs& args, int64_t row_begin, int64_t row_end);
  // x [n, cols] quantized per 32 columns for int8 activations (see QuantMatmulArgs::x_q8).
  void (*quantize_q8)(const float* x, int64_t x_stride, int64_t n, int64_t cols, int8_t* q, float* d, float* s);
  // out[i] = SiLU(gate[i]) * up[i] for i < count (the MLP's activation).
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t count);
  // Rows ids[0..count) of args.weight decoded into args.out (x, n and bias unused).
  void (*dequantize_rows)(const QuantMatmulArgs& args, const int64_t* ids, int64_t count);
  // Rows [row_begin, row_end) with int8 activations from a repacked Q8_0/Q4_0/Q4_1 weight, on the calling
  // thread (row_begin a multiple of 8 or in the rows % 8 tail); args' weight fields are unused.
  void (*int8_packed_rows)(const QuantMatmulArgs& args, const PackedInt8Weight& weight, int64_t row_begin,
                           int64_t row_end);
};

// Every build this binary holds that this CPU can run, best first ("avx512", "avx2", "baseline").
const KernelTable* const* supported_tables(int* count);
const KernelTable& active_table();
// Selects a build by name; false when the name is unknown or the CPU cannot run it.
bool select_table(const char* isa);

}  // namespace cpu
}  // namespace llmkit
