// Paged attention on CUDA. A thread block serves one query token (decode: one sequence) and one kv head;
// each warp serves one query head of that kv head's group, with its lanes splitting head_dim, and runs
// an online softmax over the visible keys. K/V are read from the cache and dequantized in registers.
// Long decode contexts are cut into partitions (grid z) whose partial results a second kernel merges.
#include <cfloat>

#include "cuda/common.cuh"

namespace llmkit {
namespace cuda {

namespace {

constexpr int kWarps = 4;
constexpr int64_t kPartitionTokens = 512;

// Element d of row `row` (a (block, head, slot) index) of one cache pool, dequantized.
template <KvFormat F>
__device__ inline float cache_element(const CacheView& c, const void* storage, const void* scales, int64_t pair,
                                      int64_t row, int d) {
  const int64_t D = c.head_dim;
  if constexpr (F == KvFormat::kFloat32) {
    return static_cast<const float*>(storage)[row * D + d];
  } else if constexpr (F == KvFormat::kBFloat16) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(storage)[row * D + d]);
  } else if constexpr (F == KvFormat::kFloat16) {
    return __half2float(static_cast<const __half*>(storage)[row * D + d]);
  } else if constexpr (F == KvFormat::kFp8E4M3) {
    return __fmul_rn(fp8_e4m3_to_float(static_cast<const uint8_t*>(storage)[row * D + d]),
                     static_cast<const float*>(scales)[pair]);
  } else if constexpr (F == KvFormat::kInt8) {
    return __fmul_rn(float(static_cast<const int8_t*>(storage)[row * D + d]), static_cast<const float*>(scales)[pair]);
  } else {
    const uint8_t byte = static_cast<const uint8_t*>(storage)[row * (D / 2) + d / 2];
    const int nibble = (d & 1) ? (byte >> 4) : (byte & 0x0f);
    return __fmul_rn(float(nibble - 8),
                     __half2float(static_cast<const __half*>(scales)[row * (D / kInt4Group) + d / kInt4Group]));
  }
}

// Finds the sequence, the number of keys visible to this row's query token, and validates what it reads.
__device__ inline bool locate_row(const AttentionArgs& a, int64_t token, int64_t* seq, int64_t* visible,
                                  unsigned* errors) {
  const int64_t capacity = a.max_blocks * a.cache.block_size;
  if (!a.prefill) {
    *seq = token;
    *visible = index_at(a.seq_lens, token);
    if (*visible < 1 || *visible > capacity) {
      if (threadIdx.x == 0) report(errors, kBadSeqLen);
      return false;
    }
    return true;
  }
  int64_t lo = 0, hi = a.batch - 1;  // the last sequence whose first row is <= token
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (index_at(a.query_start_loc, mid) <= token) lo = mid;
    else hi = mid - 1;
  }
  *seq = lo;
  const int64_t start = index_at(a.query_start_loc, lo), stop = index_at(a.query_start_loc, lo + 1);
  const int64_t len = index_at(a.seq_lens, lo);
  if (index_at(a.query_start_loc, 0) != 0 || index_at(a.query_start_loc, a.batch) != a.query.tokens ||
      token < start || token >= stop || len < stop - start) {
    if (threadIdx.x == 0) report(errors, kBadQueryStartLoc);
    return false;
  }
  if (len > capacity) {
    if (threadIdx.x == 0) report(errors, kBadSeqLen);
    return false;
  }
  *visible = len - (stop - token) + 1;
  return true;
}

template <KvFormat F, int D>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(AttentionArgs a, int64_t partition_tokens, int partitions, float* partials, unsigned* errors) {
  constexpr int E = D / 32;  // elements of head_dim per lane
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const CacheView& c = a.cache;
  const int64_t token = blockIdx.x, kv_head = blockIdx.y, group = a.query.heads / c.num_kv_heads;
  int64_t seq = 0, visible = 0;
  const bool ok = locate_row(a, token, &seq, &visible, errors);
  const int64_t begin = int64_t(blockIdx.z) * partition_tokens;
  const int64_t end = ok ? min(visible, begin + partition_tokens) : begin;

  for (int64_t g = warp; g < group; g += kWarps) {
    const int64_t head = kv_head * group + g;
    float q[E], acc[E];
    const int64_t q_base = token * a.query.token_stride + head * D;
    for (int e = 0; e < E; ++e) {
      q[e] = load_float(a.query.data, a.query.dtype, q_base + lane * E + e) * a.scale;
      acc[e] = 0.0f;
    }
    float m = -FLT_MAX, l = 0.0f;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t block = index_at(a.block_tables, seq * a.block_tables.row_stride + t / c.block_size);
      if (block < 0 || block >= c.num_blocks) {
        if (lane == 0) report(errors, kBadBlockTable);
        continue;
      }
      const int64_t pair = block * c.num_kv_heads + kv_head;
      const int64_t row = pair * c.block_size + t % c.block_size;
      float partial = 0.0f;
      for (int e = 0; e < E; ++e) partial += q[e] * cache_element<F>(c, c.key, c.key_scales, pair, row, lane * E + e);
      const float score = warp_sum(partial);
      const float new_max = fmaxf(m, score);
      const float alpha = __expf(m - new_max), p = __expf(score - new_max);
      l = l * alpha + p;
      for (int e = 0; e < E; ++e) {
        acc[e] = acc[e] * alpha + p * cache_element<F>(c, c.value, c.value_scales, pair, row, lane * E + e);
      }
      m = new_max;
    }
    if (partitions > 1) {
      float* slot = partials + ((token * a.query.heads + head) * partitions + blockIdx.z) * (D + 2);
      if (lane == 0) {
        slot[0] = l > 0.0f ? m : -FLT_MAX;
        slot[1] = l;
      }
      for (int e = 0; e < E; ++e) slot[2 + lane * E + e] = acc[e];
    } else {
      const float inverse = l > 0.0f ? 1.0f / l : 0.0f;
      const int64_t out_base = token * a.out.token_stride + head * D;
      for (int e = 0; e < E; ++e) store_float(a.out.data, a.out.dtype, out_base + lane * E + e, acc[e] * inverse);
    }
  }
}

// One warp per (sequence, query head): combines the partitions' (max, sum, acc) into the output.
template <int D>
__global__ void merge_kernel(AttentionArgs a, int partitions, const float* partials) {
  constexpr int E = D / 32;
  const int lane = threadIdx.x % 32;
  const int64_t token = blockIdx.x, head = blockIdx.y;
  const float* slots = partials + (token * a.query.heads + head) * partitions * (D + 2);
  float global_max = -FLT_MAX;
  for (int p = 0; p < partitions; ++p) global_max = fmaxf(global_max, slots[p * (D + 2)]);
  float total = 0.0f, acc[E] = {};
  for (int p = 0; p < partitions; ++p) {
    const float* slot = slots + p * (D + 2);
    if (slot[1] <= 0.0f) continue;
    const float w = __expf(slot[0] - global_max);
    total += slot[1] * w;
    for (int e = 0; e < E; ++e) acc[e] += slot[2 + lane * E + e] * w;
  }
  const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
  const int64_t out_base = token * a.out.token_stride + head * D;
  for (int e = 0; e < E; ++e) store_float(a.out.data, a.out.dtype, out_base + lane * E + e, acc[e] * inverse);
}

template <KvFormat F, int D>
void launch(const AttentionArgs& a, const Launch& launch) {
  cudaStream_t stream = stream_of(launch);
  unsigned* errors = device_error_word(launch.device);
  const int64_t rows = a.query.tokens;
  int partitions = 1;
  int64_t partition_tokens = a.max_seq_len > 0 ? a.max_seq_len : 1;
  if (!a.prefill) {
    const int64_t bs = a.cache.block_size;
    const int64_t tokens = kPartitionTokens > bs ? (kPartitionTokens / bs) * bs : bs;
    const int64_t count = (a.max_seq_len + tokens - 1) / tokens;
    const bool few_items = rows * a.cache.num_kv_heads < 4 * multiprocessor_count(launch.device);
    if (count > 1 && (a.split == 1 || (a.split == -1 && few_items))) {
      partitions = int(count);
      partition_tokens = tokens;
    }
  }
  StreamBuffer partials(partitions > 1 ? sizeof(float) * rows * a.query.heads * partitions * (D + 2) : 0, stream);
  const dim3 grid(unsigned(rows), unsigned(a.cache.num_kv_heads), unsigned(partitions));
  attention_kernel<F, D><<<grid, kWarps * 32, 0, stream>>>(a, partition_tokens, partitions, partials.as<float>(),
                                                           errors);
  if (partitions > 1) {
    merge_kernel<D><<<dim3(unsigned(rows), unsigned(a.query.heads)), 32, 0, stream>>>(a, partitions,
                                                                                      partials.as<float>());
  }
  check(cudaGetLastError(), "paged attention launch");
}

template <KvFormat F>
void launch_format(const AttentionArgs& a, const Launch& l) {
  switch (a.cache.head_dim) {
    case 64: launch<F, 64>(a, l); break;
    case 96: launch<F, 96>(a, l); break;
    case 128: launch<F, 128>(a, l); break;
    case 256: launch<F, 256>(a, l); break;
    default:
      throw std::invalid_argument("head_dim must be 64, 96, 128 or 256 for CUDA paged attention, got " +
                                  std::to_string(a.cache.head_dim));
  }
}

}  // namespace

void attention(const AttentionArgs& args, const Launch& l) {
  DeviceScope scope(l.device);
  switch (args.cache.format) {
    case KvFormat::kFloat32: launch_format<KvFormat::kFloat32>(args, l); break;
    case KvFormat::kBFloat16: launch_format<KvFormat::kBFloat16>(args, l); break;
    case KvFormat::kFloat16: launch_format<KvFormat::kFloat16>(args, l); break;
    case KvFormat::kFp8E4M3: launch_format<KvFormat::kFp8E4M3>(args, l); break;
    case KvFormat::kInt8: launch_format<KvFormat::kInt8>(args, l); break;
    case KvFormat::kInt4: launch_format<KvFormat::kInt4>(args, l); break;
  }
}

}  // namespace cuda
}  // namespace llmkit
