#include "binding/op_support.h"

#include "cuda/launch.h"

namespace llmkit {

KvFormat parse_kv_dtype(const std::string& kv_dtype, bool allow_auto) {
  if (kv_dtype == "fp8_e4m3") return KvFormat::kFp8E4M3;
  if (kv_dtype == "int8") return KvFormat::kInt8;
  if (kv_dtype == "int4") return KvFormat::kInt4;
  if (kv_dtype == "auto" && allow_auto) return KvFormat::kFloat32;  // refined from the cache dtype
  raise_value_error("kv_dtype must be one of " + std::string(allow_auto ? "auto, " : "") +
                    "fp8_e4m3, int8, int4, got '" + kv_dtype + "'");
}

CacheArgs::CacheArgs(const std::string& kv_dtype, py::handle key_cache, py::handle value_cache,
                     py::handle key_scales, py::handle value_scales, bool writable)
    : key_("cache.key", key_cache, writable), value_("cache.value", value_cache, writable) {
  KvFormat format = parse_kv_dtype(kv_dtype, true);
  key_.rank(4).contiguous();
  value_.rank(4).contiguous().same_device_as(key_);
  if (kv_dtype == "auto") {
    key_.dtype_in({DType::kFloat32, DType::kBFloat16, DType::kFloat16});
    format = key_.dtype() == DType::kFloat32    ? KvFormat::kFloat32
             : key_.dtype() == DType::kBFloat16 ? KvFormat::kBFloat16
                                                : KvFormat::kFloat16;
    value_.dtype_in({key_.dtype()});
  } else if (format == KvFormat::kInt8) {
    key_.dtype_in({DType::kInt8});
    value_.dtype_in({DType::kInt8});
  } else {
    key_.dtype_in({DType::kUInt8});
    value_.dtype_in({DType::kUInt8});
  }
  for (int d = 0; d < 4; ++d) {
    value_.dim_is(d, key_.size(d), "cache.value must match cache.key " + key_.shape_string());
  }
  view_.format = format;
  view_.key = key_.data();
  view_.value = value_.data();
  view_.num_blocks = key_.size(0);
  view_.num_kv_heads = key_.size(1);
  view_.block_size = key_.size(2);
  view_.head_dim = format == KvFormat::kInt4 ? 2 * key_.size(3) : key_.size(3);
  if (view_.num_kv_heads < 1 || view_.block_size < 1 || view_.head_dim < 1) {
    raise_value_error("cache.key must have at least one kv head, slot and element per block, got shape " +
                      key_.shape_string());
  }
  if (format == KvFormat::kInt4 && view_.head_dim % kInt4Group != 0) {
    raise_value_error("an int4 cache needs head_dim divisible by 32, got cache.key of shape " + key_.shape_string());
  }
  if (format == KvFormat::kFloat32 || format == KvFormat::kBFloat16 || format == KvFormat::kFloat16) {
    if (!key_scales.is_none() || !value_scales.is_none()) {
      raise_value_error("cache.key_scales and cache.value_scales must be None for kv_dtype 'auto'");
    }
    return;
  }
  key_scales_.emplace("cache.key_scales", key_scales, writable);
  value_scales_.emplace("cache.value_scales", value_scales, writable);
  for (TensorArg* s : {&*key_scales_, &*value_scales_}) {
    s->contiguous().same_device_as(key_);
    if (format == KvFormat::kInt4) {
      s->dtype_in({DType::kFloat16}).rank(4);
      s->dim_is(0, view_.num_blocks, "num_blocks").dim_is(1, view_.num_kv_heads, "num_kv_heads");
      s->dim_is(2, view_.block_size, "block_size").dim_is(3, view_.head_dim / kInt4Group, "head_dim / 32");
    } else {
      s->dtype_in({DType::kFloat32}).rank(2);
      s->dim_is(0, view_.num_blocks, "num_blocks").dim_is(1, view_.num_kv_heads, "num_kv_heads");
    }
  }
  view_.key_scales = key_scales_->data();
  view_.value_scales = value_scales_->data();
}

TokenMatrix token_matrix(TensorArg& t, int64_t heads_multiple_of, int64_t head_dim, const std::string& heads_meaning) {
  t.dtype_in({DType::kFloat32, DType::kBFloat16, DType::kFloat16}).rank(3).compact_from(1);
  t.dim_is(2, head_dim, "head_dim");
  if (t.size(1) < 1 || t.size(1) % heads_multiple_of != 0) {
    raise_value_error(t.name() + " must have a positive multiple of " + std::to_string(heads_multiple_of) +
                      " heads in dimension 1 (" + heads_meaning + "), got shape " + t.shape_string());
  }
  TokenMatrix m;
  m.data = t.data();
  m.dtype = t.dtype();
  m.tokens = t.size(0);
  m.heads = t.size(1);
  m.token_stride = t.size(0) > 1 ? t.stride(0) : t.size(1) * t.size(2);
  return m;
}

IndexView index_vector(TensorArg& t, int64_t length, const std::string& meaning) {
  t.dtype_in({DType::kInt32, DType::kInt64}).rank(1).contiguous().dim_is(0, length, meaning);
  IndexView v;
  v.data = t.data();
  v.wide = t.dtype() == DType::kInt64;
  return v;
}

bool runs_on_cuda(const TensorArg& first) {
  if (first.device() == DeviceKind::kCPU) return false;
  if (!cuda::built()) {
    raise_value_error(first.name() + " is on " + first.device_string() +
                      " but llmkit.kernels was built without CUDA; use CPU tensors or the reference ops");
  }
  return true;
}

void raise_cuda_errors(uint32_t bits, int64_t num_blocks, int64_t capacity) {
  if (bits & kBadBlockTable) {
    raise_value_error("block_tables holds a block id outside [0, " + std::to_string(num_blocks) +
                      ") among the blocks the sequences use");
  }
  if (bits & kBadSeqLen) raise_value_error("seq_lens holds a length outside the range the block tables cover");
  if (bits & kBadSlot) {
    raise_value_error("slot_mapping holds a slot >= the cache's " + std::to_string(capacity) + " slots");
  }
  if (bits & kBadQueryStartLoc) {
    raise_value_error("query_start_loc must start at 0, not decrease, end at the number of query tokens, "
                      "and give no sequence more new tokens than its seq_len");
  }
  if (bits & kBadIndex) raise_value_error("indices holds a row outside the logits' rows");
}

}  // namespace llmkit
