// Borrowing tensors through DLPack and checking them, with errors that name the argument.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/kernel_args.h"
#include "dlpack/dlpack.h"

namespace llmkit {

namespace py = pybind11;

enum class DeviceKind { kCPU, kCUDA };

// A tensor borrowed for the duration of one call: from a DLPack capsule, from any object with
// `__dlpack__` (torch, numpy, cupy), or from a TokenBitmask (read directly, no export). The capsule is
// not consumed; its producer frees it.
class TensorArg {
 public:
  TensorArg(const char* name, py::handle object, bool writable = false);

  const std::string& name() const { return name_; }
  int ndim() const { return ndim_; }
  int64_t size(int dim) const { return shape_[dim]; }
  int64_t stride(int dim) const { return strides_[dim]; }
  int64_t numel() const;
  bool known_dtype() const { return known_dtype_; }
  DType dtype() const { return dtype_; }
  DeviceKind device() const { return device_; }
  int device_id() const { return device_id_; }
  void* data() const { return data_; }
  std::string shape_string() const;
  std::string device_string() const;

  // Checks; each raises TypeError (dtype) or ValueError (everything else) naming the argument.
  TensorArg& dtype_in(std::initializer_list<DType> allowed);
  TensorArg& rank(int expected);
  TensorArg& dim_is(int dim, int64_t expected, const std::string& meaning);
  TensorArg& contiguous();
  TensorArg& compact_from(int first_dim);  // dims first_dim.. are row-major compact; earlier dims any stride >= 0
  TensorArg& same_device_as(const TensorArg& other);

 private:
  std::string name_;
  py::object capsule_;
  void* data_ = nullptr;
  int ndim_ = 0;
  int64_t shape_[8] = {};
  int64_t strides_[8] = {};
  bool known_dtype_ = false;
  DType dtype_ = DType::kFloat32;
  std::string dtype_name_;
  DeviceKind device_ = DeviceKind::kCPU;
  int device_id_ = 0;
};

const char* dtype_name(DType dtype);
std::string dtype_list(std::initializer_list<DType> dtypes);

[[noreturn]] void raise_value_error(const std::string& message);
[[noreturn]] void raise_type_error(const std::string& message);
[[noreturn]] void raise_buffer_error(const std::string& message);

}  // namespace llmkit
