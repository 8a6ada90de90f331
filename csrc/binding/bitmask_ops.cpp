// apply_token_bitmask: argument checks, then the CPU or CUDA kernel.
#include "binding/op_support.h"
#include "binding/ops.h"
#include "cpu/kernel_table.h"
#include "cuda/launch.h"

namespace llmkit {

void apply_token_bitmask(py::handle logits, py::handle bitmask, py::handle indices, int num_threads,
                         uintptr_t stream) {
  (void)stream;
  TensorArg l("logits", logits, true);
  l.dtype_in({DType::kFloat32, DType::kBFloat16, DType::kFloat16}).rank(2).compact_from(1);
  TensorArg m("bitmask", bitmask);
  m.same_device_as(l).dtype_in({DType::kInt32});
  const int64_t rows = l.size(0), vocab = l.size(1), words = (vocab + 31) / 32;
  if (m.ndim() != 2 || m.size(0) != rows || m.size(1) != words) {
    raise_value_error("bitmask must have shape (" + std::to_string(rows) + ", " + std::to_string(words) +
                      ") for logits " + l.shape_string() + ", got " + m.shape_string());
  }
  m.compact_from(1);
  BitmaskArgs a;
  a.logits = l.data();
  a.logits_dtype = l.dtype();
  a.rows = rows;
  a.vocab = vocab;
  a.logits_row_stride = rows > 1 ? l.stride(0) : vocab;
  a.bitmask = static_cast<const int32_t*>(m.data());
  a.bitmask_row_stride = rows > 1 ? m.stride(0) : words;
  std::optional<TensorArg> rows_to_mask;
  if (!indices.is_none()) {
    rows_to_mask.emplace("indices", indices);
    rows_to_mask->same_device_as(l).dtype_in({DType::kInt32, DType::kInt64}).rank(1).contiguous();
    a.indices.data = rows_to_mask->data();
    a.indices.wide = rows_to_mask->dtype() == DType::kInt64;
    a.num_indices = rows_to_mask->size(0);
  }
  if (rows == 0 || vocab == 0 || (a.indices.data && a.num_indices == 0)) return;
  if (!runs_on_cuda(l)) {
    for (int64_t i = 0; a.indices.data && i < a.num_indices; ++i) {
      const int64_t row = a.indices.at(i);
      if (row < -rows || row >= rows) {
        raise_value_error("indices[" + std::to_string(i) + "] = " + std::to_string(row) + " is outside [" +
                          std::to_string(-rows) + ", " + std::to_string(rows) + "), the rows of logits");
      }
    }
    py::gil_scoped_release release;
    cpu::active_table().apply_bitmask(a, num_threads > 0 ? num_threads : 1);
    return;
  }
#if defined(LLMKIT_WITH_CUDA)
  const cuda::Launch launch{l.device_id(), stream};
  cuda::apply_bitmask(a, launch);
  if (cuda::checks_enabled()) raise_cuda_errors(cuda::take_errors(launch), 0, 0);
#endif
}

}  // namespace llmkit
