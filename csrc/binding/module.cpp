// llmkit.kernels._C: native paged attention, KV quantization and token bitmasks over DLPack tensors.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "binding/ops.h"
#include "binding/tensor_arg.h"
#include "cpu/kernel_table.h"
#include "cuda/launch.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace llmkit {
void bind_grammar(py::module_& m);        // binding/grammar_ops.cpp
void bind_token_bitmask(py::module_& m);  // binding/token_bitmask.cpp
void bind_quant(py::module_& m);          // binding/quant_ops.cpp
}  // namespace llmkit

namespace {

std::vector<std::string> supported_cpu_isas() {
  int count = 0;
  const llmkit::cpu::KernelTable* const* tables = llmkit::cpu::supported_tables(&count);
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.emplace_back(tables[i]->isa);
  return names;
}

void set_cpu_isa(const std::string& isa) {
  if (!llmkit::cpu::select_table(isa.c_str())) {
    std::string known;
    for (const std::string& name : supported_cpu_isas()) known += (known.empty() ? "" : ", ") + name;
    llmkit::raise_value_error("isa must be one this CPU runs (" + known + "), got '" + isa + "'");
  }
}

int cuda_device_count() {
#if defined(LLMKIT_WITH_CUDA)
  return llmkit::cuda::device_count();
#else
  return 0;
#endif
}

void set_cuda_checks(bool enabled) {
#if defined(LLMKIT_WITH_CUDA)
  llmkit::cuda::set_checks_enabled(enabled);
#else
  (void)enabled;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "llmkit native kernels over DLPack tensors (CPU always, CUDA when built with nvcc)";

  m.def("paged_attention_decode", &llmkit::paged_attention_decode, "out"_a, "query"_a, "kv_dtype"_a,
        "key_cache"_a, "value_cache"_a, "key_scales"_a, "value_scales"_a, "block_tables"_a, "seq_lens"_a,
        "scale"_a, "num_threads"_a = 1, "stream"_a = 0, "split"_a = -1,
        "One query token per sequence over paged K/V (split: -1 automatic, 0 never, 1 always split-K).");
  m.def("paged_attention_prefill", &llmkit::paged_attention_prefill, "out"_a, "query"_a, "kv_dtype"_a,
        "key_cache"_a, "value_cache"_a, "key_scales"_a, "value_scales"_a, "block_tables"_a, "seq_lens"_a,
        "query_start_loc"_a, "scale"_a, "num_threads"_a = 1, "stream"_a = 0,
        "Variable-length causal attention of new tokens over their cached prefix and themselves.");
  m.def("reshape_and_cache", &llmkit::reshape_and_cache, "key"_a, "value"_a, "kv_dtype"_a, "key_cache"_a,
        "value_cache"_a, "key_scales"_a, "value_scales"_a, "slot_mapping"_a, "num_threads"_a = 1, "stream"_a = 0,
        "Write new tokens into their cache slots, quantizing on the way; negative slots are skipped.");
  m.def("quantize_kv", &llmkit::quantize_kv, "x"_a, "storage"_a, "scales"_a, "kv_dtype"_a, "num_threads"_a = 1,
        "stream"_a = 0, "Quantize whole blocks x into preallocated storage and scales.");
  m.def("dequantize_kv", &llmkit::dequantize_kv, "storage"_a, "scales"_a, "out"_a, "kv_dtype"_a,
        "num_threads"_a = 1, "stream"_a = 0, "Dequantize whole blocks into a preallocated float32 out.");
  m.def("apply_token_bitmask", &llmkit::apply_token_bitmask, "logits"_a, "bitmask"_a, "indices"_a = py::none(),
        "num_threads"_a = 1, "stream"_a = 0, "Set logits whose bit is 0 to -inf, in place.");

  llmkit::bind_token_bitmask(m);
  llmkit::bind_quant(m);
  llmkit::bind_grammar(m);

  m.def("cpu_isa", []() { return std::string(llmkit::cpu::active_table().isa); },
        "The instruction-set build the CPU kernels use now.");
  m.def("supported_cpu_isas", &supported_cpu_isas, "Builds this CPU can run, best first.");
  m.def("set_cpu_isa", &set_cpu_isa, "isa"_a, "Use another supported build (for tests and benchmarks).");
  m.def("cuda_built", []() { return llmkit::cuda::built(); }, "Whether this module was compiled with CUDA.");
  m.def("cuda_device_count", &cuda_device_count, "Visible CUDA devices (0 without GPU, driver or CUDA build).");
  m.def("set_cuda_checks", &set_cuda_checks, "enabled"_a,
        "Whether CUDA ops wait for their kernels to report out-of-range ids as ValueError (default on).");
}
