// paged_attention_decode / paged_attention_prefill: argument checks, then the CPU or CUDA kernel.
#include "binding/ops.h"

#include "binding/op_support.h"
#include "cpu/kernel_table.h"
#include "cuda/launch.h"

namespace llmkit {

namespace {

std::string entry(const char* name, int64_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

// Every length and block id the CPU kernel will read must be in range; returns the longest sequence.
int64_t check_values_on_cpu(const AttentionArgs& a, int64_t num_query_tokens) {
  const int64_t capacity = a.max_blocks * a.cache.block_size;
  int64_t longest = 0;
  if (a.prefill) {
    if (a.query_start_loc.at(0) != 0) {
      raise_value_error("query_start_loc[0] must be 0, got " + std::to_string(a.query_start_loc.at(0)));
    }
    if (a.query_start_loc.at(a.batch) != num_query_tokens) {
      raise_value_error(entry("query_start_loc", a.batch) + " must equal the number of query tokens " +
                        std::to_string(num_query_tokens) + ", got " + std::to_string(a.query_start_loc.at(a.batch)));
    }
  }
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t len = a.seq_lens.at(b);
    int64_t q_len = 1;
    if (a.prefill) {
      q_len = a.query_start_loc.at(b + 1) - a.query_start_loc.at(b);
      if (q_len < 0) {
        raise_value_error("query_start_loc must not decrease, got " + entry("query_start_loc", b + 1) + " = " +
                          std::to_string(a.query_start_loc.at(b + 1)) + " < " + entry("query_start_loc", b) +
                          " = " + std::to_string(a.query_start_loc.at(b)));
      }
      if (q_len == 0) continue;
    }
    if (len < q_len || len > capacity) {
      raise_value_error(entry("seq_lens", b) + " = " + std::to_string(len) + " is outside [" + std::to_string(q_len) +
                        ", " + std::to_string(capacity) + "] (" +
                        (a.prefill ? "its new tokens" : "one query token") +
                        " up to block_tables' width times block_size)");
    }
    longest = len > longest ? len : longest;
    const int64_t blocks = (len + a.cache.block_size - 1) / a.cache.block_size;
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t block = a.block_tables.at(b, i);
      if (block < 0 || block >= a.cache.num_blocks) {
        raise_value_error("block_tables[" + std::to_string(b) + ", " + std::to_string(i) + "] = " +
                          std::to_string(block) + " is not a block id in [0, " + std::to_string(a.cache.num_blocks) +
                          ")");
      }
    }
  }
  return longest;
}

void paged_attention(bool prefill, py::handle out, py::handle query, const std::string& kv_dtype, py::handle key_cache,
                     py::handle value_cache, py::handle key_scales, py::handle value_scales, py::handle block_tables,
                     py::handle seq_lens, py::handle query_start_loc, double scale, int num_threads, uintptr_t stream,
                     int split) {
  (void)stream;
  TensorArg q("query", query);
  TensorArg o("out", out, true);
  CacheArgs cache(kv_dtype, key_cache, value_cache, key_scales, value_scales, false);
  const CacheView& c = cache.view();
  q.same_device_as(cache.key());
  o.same_device_as(q);

  AttentionArgs a;
  a.cache = c;
  a.prefill = prefill;
  a.scale = float(scale);
  a.split = split;
  a.query = token_matrix(q, c.num_kv_heads, c.head_dim, "query heads, a multiple of the cache's kv heads");
  a.out = token_matrix(o, c.num_kv_heads, c.head_dim, "the query's heads");
  o.dim_is(0, q.size(0), "the query's tokens").dim_is(1, q.size(1), "the query's heads");

  TensorArg tables("block_tables", block_tables);
  tables.dtype_in({DType::kInt32, DType::kInt64}).rank(2).compact_from(1).same_device_as(q);
  a.batch = tables.size(0);
  a.max_blocks = tables.size(1);
  a.block_tables.data = tables.data();
  a.block_tables.wide = tables.dtype() == DType::kInt64;
  a.block_tables.row_stride = tables.size(0) > 1 ? tables.stride(0) : tables.size(1);
  if (!prefill) q.dim_is(0, a.batch, "batch: one query token per row of block_tables");

  TensorArg lens("seq_lens", seq_lens);
  lens.same_device_as(q);
  a.seq_lens = index_vector(lens, a.batch, "batch, the rows of block_tables");
  std::optional<TensorArg> starts;
  if (prefill) {
    starts.emplace("query_start_loc", query_start_loc);
    starts->same_device_as(q);
    a.query_start_loc = index_vector(*starts, a.batch + 1, "batch + 1");
  }
  if (a.batch == 0 || q.size(0) == 0) return;

  if (!runs_on_cuda(q)) {
    if (c.head_dim > kCpuMaxHeadDim) {
      raise_value_error("head_dim must be at most " + std::to_string(kCpuMaxHeadDim) + " on the CPU, got " +
                        std::to_string(c.head_dim));
    }
    a.max_seq_len = check_values_on_cpu(a, q.size(0));
    py::gil_scoped_release release;
    cpu::active_table().attention(a, num_threads > 0 ? num_threads : 1);
    return;
  }
#if defined(LLMKIT_WITH_CUDA)
  a.max_seq_len = a.max_blocks * c.block_size;
  const cuda::Launch launch{q.device_id(), stream};
  cuda::attention(a, launch);
  if (cuda::checks_enabled()) raise_cuda_errors(cuda::take_errors(launch), c.num_blocks, c.num_blocks * c.block_size);
#endif
}

}  // namespace

void paged_attention_decode(py::handle out, py::handle query, const std::string& kv_dtype, py::handle key_cache,
                            py::handle value_cache, py::handle key_scales, py::handle value_scales,
                            py::handle block_tables, py::handle seq_lens, double scale, int num_threads,
                            uintptr_t stream, int split) {
  if (split < -1 || split > 1) raise_value_error("split must be -1 (automatic), 0 (never) or 1 (always)");
  paged_attention(false, out, query, kv_dtype, key_cache, value_cache, key_scales, value_scales, block_tables,
                  seq_lens, py::none(), scale, num_threads, stream, split);
}

void paged_attention_prefill(py::handle out, py::handle query, const std::string& kv_dtype, py::handle key_cache,
                             py::handle value_cache, py::handle key_scales, py::handle value_scales,
                             py::handle block_tables, py::handle seq_lens, py::handle query_start_loc, double scale,
                             int num_threads, uintptr_t stream) {
  paged_attention(true, out, query, kv_dtype, key_cache, value_cache, key_scales, value_scales, block_tables,
                  seq_lens, query_start_loc, scale, num_threads, stream, 0);
}

}  // namespace llmkit
