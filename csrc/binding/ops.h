// The functions llmkit.kernels._C exposes (see module.cpp for their Python signatures).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace llmkit {

namespace py = pybind11;

void paged_attention_decode(py::handle out, py::handle query, const std::string& kv_dtype, py::handle key_cache,
                            py::handle value_cache, py::handle key_scales, py::handle value_scales,
                            py::handle block_tables, py::handle seq_lens, double scale, int num_threads,
                            uintptr_t stream, int split);
void paged_attention_prefill(py::handle out, py::handle query, const std::string& kv_dtype, py::handle key_cache,
                             py::handle value_cache, py::handle key_scales, py::handle value_scales,
                             py::handle block_tables, py::handle seq_lens, py::handle query_start_loc, double scale,
                             int num_threads, uintptr_t stream);
void reshape_and_cache(py::handle key, py::handle value, const std::string& kv_dtype, py::handle key_cache,
                       py::handle value_cache, py::handle key_scales, py::handle value_scales,
                       py::handle slot_mapping, int num_threads, uintptr_t stream);
void quantize_kv(py::handle x, py::handle storage, py::handle scales, const std::string& kv_dtype, int num_threads,
                 uintptr_t stream);
void dequantize_kv(py::handle storage, py::handle scales, py::handle out, const std::string& kv_dtype,
                   int num_threads, uintptr_t stream);
void apply_token_bitmask(py::handle logits, py::handle bitmask, py::handle indices, int num_threads,
                         uintptr_t stream);

}  // namespace llmkit
