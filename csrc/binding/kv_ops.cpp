// reshape_and_cache, quantize_kv, dequantize_kv: argument checks, then the CPU or CUDA kernel.
#include <algorithm>
#include <utility>
#include <vector>

#include "binding/op_support.h"
#include "binding/ops.h"
#include "cpu/cache_write.h"
#include "cpu/kernel_table.h"
#include "cuda/launch.h"

namespace llmkit {

namespace {

void check_cpu_head_dim(int64_t head_dim) {
  if (head_dim > kCpuMaxHeadDim) {
    raise_value_error("head_dim must be at most " + std::to_string(kCpuMaxHeadDim) + " on the CPU, got " +
                      std::to_string(head_dim));
  }
}

// Whole blocks x [num_blocks, heads, block_size, head_dim] and their storage and scales.
QuantizeArgs block_args(TensorArg& values, TensorArg& storage, TensorArg& scales, KvFormat format) {
  values.rank(4).contiguous();
  storage.rank(4).contiguous().same_device_as(values);
  scales.contiguous().same_device_as(values);
  storage.dtype_in({format == KvFormat::kInt8 ? DType::kInt8 : DType::kUInt8});
  const int64_t head_dim = values.size(3);
  if (format == KvFormat::kInt4 && head_dim % kInt4Group != 0) {
    raise_value_error(values.name() + " needs head_dim divisible by 32 for int4, got shape " + values.shape_string());
  }
  for (int d = 0; d < 3; ++d) storage.dim_is(d, values.size(d), "as " + values.name());
  storage.dim_is(3, format == KvFormat::kInt4 ? head_dim / 2 : head_dim,
                 format == KvFormat::kInt4 ? "head_dim / 2 packed bytes" : "head_dim");
  if (format == KvFormat::kInt4) {
    scales.dtype_in({DType::kFloat16}).rank(4);
    for (int d = 0; d < 3; ++d) scales.dim_is(d, values.size(d), "as " + values.name());
    scales.dim_is(3, head_dim / kInt4Group, "head_dim / 32 groups");
  } else {
    scales.dtype_in({DType::kFloat32}).rank(2);
    scales.dim_is(0, values.size(0), "num_blocks").dim_is(1, values.size(1), "heads");
  }
  QuantizeArgs a;
  a.values = values.data();
  a.values_dtype = values.dtype();
  a.storage = storage.data();
  a.scales = scales.data();
  a.format = format;
  a.num_blocks = values.size(0);
  a.heads = values.size(1);
  a.block_size = values.size(2);
  a.head_dim = head_dim;
  return a;
}

}  // namespace

void reshape_and_cache(py::handle key, py::handle value, const std::string& kv_dtype, py::handle key_cache,
                       py::handle value_cache, py::handle key_scales, py::handle value_scales,
                       py::handle slot_mapping, int num_threads, uintptr_t stream) {
  (void)stream;
  TensorArg k("key", key);
  TensorArg v("value", value);
  CacheArgs cache(kv_dtype, key_cache, value_cache, key_scales, value_scales, true);
  const CacheView& c = cache.view();
  k.same_device_as(cache.key());
  v.same_device_as(k);
  CacheWriteArgs a;
  a.cache = c;
  a.key = token_matrix(k, c.num_kv_heads, c.head_dim, "the cache's kv heads");
  a.value = token_matrix(v, c.num_kv_heads, c.head_dim, "the cache's kv heads");
  k.dim_is(1, c.num_kv_heads, "the cache's kv heads");
  v.dim_is(0, k.size(0), "key's tokens").dim_is(1, c.num_kv_heads, "the cache's kv heads");
  TensorArg slots("slot_mapping", slot_mapping);
  slots.same_device_as(k);
  a.slot_mapping = index_vector(slots, k.size(0), "key's tokens");
  if (k.size(0) == 0) return;
  const int64_t capacity = c.num_blocks * c.block_size;

  if (!runs_on_cuda(k)) {
    check_cpu_head_dim(c.head_dim);
    for (int64_t t = 0; t < k.size(0); ++t) {
      const int64_t slot = a.slot_mapping.at(t);
      if (slot >= capacity) {
        raise_value_error("slot_mapping[" + std::to_string(t) + "] = " + std::to_string(slot) +
                          " is outside the cache's " + std::to_string(capacity) +
                          " slots (num_blocks * block_size; a negative slot skips the token)");
      }
    }
    py::gil_scoped_release release;
    cpu::write_cache(a, num_threads);
    return;
  }
#if defined(LLMKIT_WITH_CUDA)
  const cuda::Launch launch{k.device_id(), stream};
  cuda::cache_write(a, launch);
  if (cuda::checks_enabled()) raise_cuda_errors(cuda::take_errors(launch), c.num_blocks, capacity);
#endif
}

void quantize_kv(py::handle x, py::handle storage, py::handle scales, const std::string& kv_dtype, int num_threads,
                 uintptr_t stream) {
  (void)stream;
  const KvFormat format = parse_kv_dtype(kv_dtype, false);
  TensorArg values("x", x);
  values.dtype_in({DType::kFloat32, DType::kBFloat16, DType::kFloat16});
  TensorArg q("storage", storage, true);
  TensorArg s("scales", scales, true);
  QuantizeArgs a = block_args(values, q, s, format);
  if (values.numel() == 0) return;
  if (!runs_on_cuda(values)) {
    py::gil_scoped_release release;
    cpu::active_table().quantize(a, num_threads > 0 ? num_threads : 1);
    return;
  }
#if defined(LLMKIT_WITH_CUDA)
  cuda::quantize_kv(a, cuda::Launch{values.device_id(), stream});
#endif
}

void dequantize_kv(py::handle storage, py::handle scales, py::handle out, const std::string& kv_dtype,
                   int num_threads, uintptr_t stream) {
  (void)stream;
  const KvFormat format = parse_kv_dtype(kv_dtype, false);
  TensorArg values("out", out, true);
  values.dtype_in({DType::kFloat32});
  TensorArg q("q", storage);
  TensorArg s("scales", scales);
  QuantizeArgs a = block_args(values, q, s, format);
  if (values.numel() == 0) return;
  if (!runs_on_cuda(values)) {
    py::gil_scoped_release release;
    cpu::active_table().dequantize(a, num_threads > 0 ? num_threads : 1);
    return;
  }
#if defined(LLMKIT_WITH_CUDA)
  cuda::dequantize_kv(a, cuda::Launch{values.device_id(), stream});
#endif
}

}  // namespace llmkit
