// An int32 [rows, words] CPU token bitmask in memory this module owns. Ops read it without a DLPack
// export (the cost that dominates a single fill), and torch views it through __dlpack__ without a copy.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

namespace llmkit {

namespace py = pybind11;

struct TokenBitmask {
  TokenBitmask(int64_t rows, int64_t words);

  std::shared_ptr<int32_t> data;  // 64-byte aligned, zeroed; shared with every DLPack view
  int64_t shape[2];               // rows, words
  int64_t strides[2];             // words, 1
};

// The TokenBitmask inside `object` (an instance of _C.TokenBitmask or a Python subclass), else nullptr.
// A type check and a pointer read: no allocation, no Python call.
TokenBitmask* as_token_bitmask(py::handle object);

void bind_token_bitmask(py::module_& m);

}  // namespace llmkit
