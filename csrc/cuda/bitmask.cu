// Token-bitmask application on CUDA: one thread per (row, token).
#include <algorithm>

#include "cuda/common.cuh"

namespace llmkit {
namespace cuda {

namespace {

constexpr unsigned kThreads = 256;

__global__ void apply_bitmask_kernel(BitmaskArgs a, int64_t num_rows, unsigned* errors) {
  const int64_t token = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  // Rows strided over gridDim.y (at most 65,535 blocks in y): a batch of any size.
  for (int64_t k = blockIdx.y; k < num_rows; k += gridDim.y) {
    int64_t row = k;
    if (a.indices.data != nullptr) {
      row = index_at(a.indices, k);
      if (row < -a.rows || row >= a.rows) {
        if (threadIdx.x == 0 && blockIdx.x == 0) report(errors, kBadIndex);
        continue;
      }
      if (row < 0) row += a.rows;
    }
    if (token >= a.vocab) continue;
    const uint32_t word = uint32_t(a.bitmask[row * a.bitmask_row_stride + token / 32]);
    if ((word >> (token % 32)) & 1u) continue;
    const int64_t i = row * a.logits_row_stride + token;
    if (a.logits_dtype == DType::kFloat32) static_cast<float*>(a.logits)[i] = -INFINITY;
    else static_cast<uint16_t*>(a.logits)[i] = a.logits_dtype == DType::kBFloat16 ? 0xff80u : 0xfc00u;
  }
}

}  // namespace

void apply_bitmask(const BitmaskArgs& args, const Launch& launch) {
  DeviceScope scope(launch.device);
  const int64_t rows = args.indices.data != nullptr ? args.num_indices : args.rows;
  constexpr int64_t kMaxGridY = 65535;
  const dim3 grid(blocks_for(args.vocab, kThreads), unsigned(std::min(rows, kMaxGridY)));
  apply_bitmask_kernel<<<grid, kThreads, 0, stream_of(launch)>>>(args, rows, device_error_word(launch.device));
  check(cudaGetLastError(), "apply_token_bitmask launch");
}

}  // namespace cuda
}  // namespace llmkit
