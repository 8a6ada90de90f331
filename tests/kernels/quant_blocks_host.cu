// Host program for test_cuda_quant_blocks.py: decodes stored weight rows with the CUDA kernels' block
// decoders (csrc/cuda/quant_blocks.cuh) on the CPU.
// Usage: quant_blocks_host <format code> <cols> < rows.bin > floats.bin   (format code: llmkit::WeightFormat)
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/quant_blocks.cuh"

namespace qb = llmkit::quant_blocks;
using llmkit::WeightFormat;

template <WeightFormat F>
void decode_rows(const std::vector<uint8_t>& data, long cols, std::vector<float>& out) {
  using Fmt = qb::Format<F>;
  const long row_bytes = cols / Fmt::kBlockElems * Fmt::kBlockBytes;
  const long rows = long(data.size()) / row_bytes;
  out.assign(size_t(rows * cols), 0.0f);
  for (long r = 0; r < rows; ++r) {
    const uint8_t* row = data.data() + r * row_bytes;
    float* values = out.data() + r * cols;
    long first = 0;
    for (; first + qb::kRun <= cols; first += qb::kRun) Fmt::decode(row, first, values + first);
    if constexpr (qb::kHasTail<F>) {
      for (; first < cols; ++first) values[first] = Fmt::element(row, first);
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <format code> <cols> < rows.bin > floats.bin\n", argv[0]);
    return 2;
  }
  const int code = std::atoi(argv[1]);
  const long cols = std::atol(argv[2]);
  std::vector<uint8_t> data;
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, stdin)) > 0) data.insert(data.end(), buffer, buffer + got);
  std::vector<float> out;
  switch (WeightFormat(code)) {
    case WeightFormat::kF32: decode_rows<WeightFormat::kF32>(data, cols, out); break;
    case WeightFormat::kF16: decode_rows<WeightFormat::kF16>(data, cols, out); break;
    case WeightFormat::kBF16: decode_rows<WeightFormat::kBF16>(data, cols, out); break;
    case WeightFormat::kQ8_0: decode_rows<WeightFormat::kQ8_0>(data, cols, out); break;
    case WeightFormat::kQ4_0: decode_rows<WeightFormat::kQ4_0>(data, cols, out); break;
    case WeightFormat::kQ4_1: decode_rows<WeightFormat::kQ4_1>(data, cols, out); break;
    case WeightFormat::kQ5_0: decode_rows<WeightFormat::kQ5_0>(data, cols, out); break;
    case WeightFormat::kQ5_1: decode_rows<WeightFormat::kQ5_1>(data, cols, out); break;
    case WeightFormat::kQ4_K: decode_rows<WeightFormat::kQ4_K>(data, cols, out); break;
    case WeightFormat::kQ5_K: decode_rows<WeightFormat::kQ5_K>(data, cols, out); break;
    case WeightFormat::kQ6_K: decode_rows<WeightFormat::kQ6_K>(data, cols, out); break;
    default: std::fprintf(stderr, "unknown format code %d\n", code); return 2;
  }
  std::fwrite(out.data(), sizeof(float), out.size(), stdout);
  return 0;
}
