// Argument parsing shared by the ops: the paged cache, activations, index tensors, and device routing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "binding/tensor_arg.h"
#include "common/kernel_args.h"

namespace llmkit {

// The K/V pools of one layer and their scales, checked against each other and against kv_dtype.
class CacheArgs {
 public:
  CacheArgs(const std::string& kv_dtype, py::handle key_cache, py::handle value_cache, py::handle key_scales,
            py::handle value_scales, bool writable);
  const CacheView& view() const { return view_; }
  const TensorArg& key() const { return key_; }

 private:
  TensorArg key_;
  TensorArg value_;
  std::optional<TensorArg> key_scales_;
  std::optional<TensorArg> value_scales_;
  CacheView view_;
};

KvFormat parse_kv_dtype(const std::string& kv_dtype, bool allow_auto);

// A [tokens, heads, head_dim] float tensor (float32/bfloat16/float16), compact in its last two dims.
TokenMatrix token_matrix(TensorArg& t, int64_t heads_multiple_of, int64_t head_dim, const std::string& heads_meaning);

// A 1-D int32/int64 contiguous index tensor of `length` elements.
IndexView index_vector(TensorArg& t, int64_t length, const std::string& meaning);

// Whether the call runs on CUDA; raises when the tensors are on CUDA but this build or machine has no CUDA.
bool runs_on_cuda(const TensorArg& first);

// Raises the ValueError that matches the first set bit, naming the argument.
void raise_cuda_errors(uint32_t bits, int64_t num_blocks, int64_t capacity);

}  // namespace llmkit
