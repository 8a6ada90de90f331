// One thread of the quantized matmul kernels (AVX2 build), timed in thread CPU time so that a loaded,
// shared box still gives steady numbers: float32 activations (the tile kernel below 48 tokens, the panel
// GEMM from 48), int8 activations on the GGUF layout, and int8 on the repacked layout
// (csrc/cpu/int8_repack.h). Random blocks with sane scales; ns per (32-weight block x row x token) and
// GMAC/s, best of 5.
//
//   g++ -O3 -mavx2 -mfma -mf16c -mbmi2 -std=c++17 -Icsrc benchmarks/quant_matmul_driver.cpp \
//       csrc/cpu/thread_pool.cpp -lpthread -o /tmp/quant_matmul_driver
//   /tmp/quant_matmul_driver [q4_1|q4_0|q8_0] [rows] [cols]
#define LLMKIT_CPU_ISA avx2
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "cpu/quant_matmul_impl.h"

using namespace llmkit;

template <class Fn>
static double best_seconds(Fn fn, int64_t iters) {
  fn();
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (int64_t i = 0; i < iters; ++i) fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    const double seconds = ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9) / double(iters);
    best = seconds < best ? seconds : best;
  }
  return best;
}

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "q4_1";
  const WeightFormat format = name == "q8_0" ? WeightFormat::kQ8_0
                              : name == "q4_0" ? WeightFormat::kQ4_0
                                               : WeightFormat::kQ4_1;
  const int64_t rows = argc > 2 ? std::atoll(argv[2]) : 1536, cols = argc > 3 ? std::atoll(argv[3]) : 576;
  const int64_t block_bytes = gguf_block_bytes(format), row_bytes = cols / 32 * block_bytes;
  std::vector<uint8_t> weight(size_t(rows * row_bytes));
  std::mt19937 random(0);
  for (auto& byte : weight) byte = uint8_t(random());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / 32; ++b) {  // scales near 2^-7, Q4_1 mins near -2^-3
      uint8_t* block = weight.data() + r * row_bytes + b * block_bytes;
      const uint16_t d = uint16_t(0x2000 + random() % 256), m = uint16_t(0xB000 + random() % 256);
      std::memcpy(block, &d, 2);
      if (gguf_header_bytes(format) == 4) std::memcpy(block + 2, &m, 2);
    }
  }
  const PackedInt8Buffer packed(weight.data(), format, rows, cols);
  std::printf("%s %lld x %lld, one thread, thread CPU time: ns per block-row-token (GMAC/s)\n", name.c_str(),
              (long long)rows, (long long)cols);
  std::printf("%6s %18s %18s %18s\n", "tokens", "float32", "int8 GGUF layout", "int8 repacked");
  for (const int64_t n : {1, 4, 8, 16, 64, 512}) {
    std::vector<float> x(size_t(n * cols)), out(size_t(n * rows));
    for (auto& v : x) v = float(random() % 1000) / 500.0f - 1.0f;
    QuantMatmulArgs a;
    a.x = x.data();
    a.x_stride = cols;
    a.weight = weight.data();
    a.format = format;
    a.row_bytes = row_bytes;
    a.rows = rows;
    a.cols = cols;
    a.n = n;
    a.out = out.data();
    a.out_stride = rows;
    std::vector<int8_t> q(size_t(n * cols));
    std::vector<float> scale(size_t(n * cols / 32)), sum(size_t(n * cols / 32));
    avx2::quantize_q8(a.x, cols, n, cols, q.data(), scale.data(), sum.data());
    QuantMatmulArgs int8 = a;
    int8.int8_activations = true;
    int8.x_q8 = q.data();
    int8.x_q8_scale = scale.data();
    int8.x_q8_sum = sum.data();
    const int64_t iters = 2048 / n > 1 ? 2048 / n : 1;
    const double seconds[3] = {
        best_seconds([&] { avx2::quant_matmul_rows(a, 0, rows); }, iters),
        best_seconds([&] { avx2::quant_matmul_rows(int8, 0, rows); }, iters),
        best_seconds([&] { avx2::int8_packed_rows(int8, packed.view(), 0, rows); }, iters),
    };
    const double units = double(rows) * double(cols / 32) * double(n), macs = double(rows) * cols * n;
    std::printf("%6lld", (long long)n);
    for (const double s : seconds) std::printf("   %6.3f (%6.1f)", s * 1e9 / units, macs / s / 1e9);
    std::printf("\n");
  }
}
