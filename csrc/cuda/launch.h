// The CUDA side of the ops, called by the bindings. Present only when the module was built with nvcc.
#pragma once

#include <cstdint>

#include "common/kernel_args.h"

namespace llmkit {
namespace cuda {

#if defined(LLMKIT_WITH_CUDA)

inline constexpr bool built() { return true; }

// Visible CUDA devices; 0 when there is no GPU or no driver (never an error).
int device_count();

struct Launch {
  int device;
  uintptr_t stream;  // a cudaStream_t as an integer (torch.cuda.current_stream().cuda_stream)
};

void attention(const AttentionArgs& args, const Launch& launch);
void cache_write(const CacheWriteArgs& args, const Launch& launch);
void quantize_kv(const QuantizeArgs& args, const Launch& launch);
void dequantize_kv(const QuantizeArgs& args, const Launch& launch);
void apply_bitmask(const BitmaskArgs& args, const Launch& launch);
// out = x @ dequantize(weight)^T (+ bias) over weights as stored (cuda/quant_matmul.cu).
void quant_matmul(const QuantMatmulArgs& args, const Launch& launch);

// Kernels never read or write out of range: a bad block id, slot, length or row index is skipped and
// recorded as a bit (op_support.h CudaErrorBits) in a word of mapped host memory per device.
// take_errors waits for the stream, returns the bits and clears them.
uint32_t take_errors(const Launch& launch);
bool checks_enabled();
void set_checks_enabled(bool enabled);

#else

inline constexpr bool built() { return false; }

#endif

}  // namespace cuda
}  // namespace llmkit
