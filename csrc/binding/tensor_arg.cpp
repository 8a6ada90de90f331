#include "binding/tensor_arg.h"

#include <Python.h>

#include <sstream>

#include "binding/token_bitmask.h"

namespace llmkit {

void raise_value_error(const std::string& message) { throw py::value_error(message); }
void raise_type_error(const std::string& message) { throw py::type_error(message); }
void raise_buffer_error(const std::string& message) { throw py::buffer_error(message); }

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat16: return "float16";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
  }
  return "unknown";
}

std::string dtype_list(std::initializer_list<DType> dtypes) {
  std::string text;
  size_t i = 0;
  for (DType d : dtypes) {
    if (i > 0) text += (i + 1 == dtypes.size()) ? " or " : ", ";
    text += dtype_name(d);
    ++i;
  }
  return text;
}

namespace {

std::string describe_dl_dtype(const DLDataType& t) {
  const char* base = "unknown";
  switch (t.code) {
    case kDLInt: base = "int"; break;
    case kDLUInt: base = "uint"; break;
    case kDLFloat: base = "float"; break;
    case kDLBfloat: base = "bfloat"; break;
    case kDLBool: return "bool";
    case kDLComplex: base = "complex"; break;
    default: return "dlpack type code " + std::to_string(t.code);
  }
  std::string name = std::string(base) + std::to_string(t.bits);
  if (t.lanes != 1) name += "x" + std::to_string(t.lanes);
  return name;
}

bool dtype_from_dl(const DLDataType& t, DType* out) {
  if (t.lanes != 1) return false;
  if (t.code == kDLFloat && t.bits == 32) *out = DType::kFloat32;
  else if (t.code == kDLBfloat && t.bits == 16) *out = DType::kBFloat16;
  else if (t.code == kDLFloat && t.bits == 16) *out = DType::kFloat16;
  else if (t.code == kDLUInt && t.bits == 8) *out = DType::kUInt8;
  else if (t.code == kDLInt && t.bits == 8) *out = DType::kInt8;
  else if (t.code == kDLInt && t.bits == 32) *out = DType::kInt32;
  else if (t.code == kDLInt && t.bits == 64) *out = DType::kInt64;
  else return false;
  return true;
}

// torch's Tensor.__dlpack__ is Python code (about 2 µs a call); its C exporter torch.utils.dlpack.to_dlpack
// takes about 0.2 µs. Returns that exporter when `object` is a torch tensor and torch is already imported
// (this module never imports torch), else nullptr. Called with the GIL held, which guards the statics.
PyObject* torch_exporter(PyObject* object) {
  static PyObject* tensor_type = nullptr;
  static PyObject* to_dlpack = nullptr;  // both kept for the life of the process
  if (tensor_type == nullptr) {
    PyObject* modules = PyImport_GetModuleDict();
    PyObject* torch = PyDict_GetItemString(modules, "torch");
    PyObject* dlpack = PyDict_GetItemString(modules, "torch.utils.dlpack");
    if (torch == nullptr || dlpack == nullptr) return nullptr;
    PyObject* type = PyObject_GetAttrString(torch, "Tensor");
    PyObject* exporter = PyObject_GetAttrString(dlpack, "to_dlpack");
    if (type == nullptr || exporter == nullptr) {
      PyErr_Clear();
      Py_XDECREF(type);
      Py_XDECREF(exporter);
      return nullptr;
    }
    tensor_type = type;
    to_dlpack = exporter;
  }
  if (Py_TYPE(object) == reinterpret_cast<PyTypeObject*>(tensor_type)) return to_dlpack;
  const int is_tensor = PyObject_IsInstance(object, tensor_type);  // subclasses (nn.Parameter, ...)
  if (is_tensor < 0) PyErr_Clear();
  return is_tensor == 1 ? to_dlpack : nullptr;
}

py::object export_capsule(const char* name, py::handle object) {
  if (PyCapsule_CheckExact(object.ptr())) return py::reinterpret_borrow<py::object>(object);
  if (PyObject* exporter = torch_exporter(object.ptr())) {
    PyObject* capsule = PyObject_CallOneArg(exporter, object.ptr());
    if (capsule == nullptr) {
      py::error_already_set err;
      raise_value_error(std::string(name) + " cannot be shared through DLPack: " + err.what());
    }
    return py::reinterpret_steal<py::object>(capsule);
  }
  if (!py::hasattr(object, "__dlpack__")) {
    raise_type_error(std::string(name) + " must be a tensor (an object with __dlpack__ or a DLPack capsule), got " +
                     std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  py::object method = object.attr("__dlpack__");
  try {
    return method(py::arg("max_version") = py::make_tuple(DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION));
  } catch (py::error_already_set& err) {
    if (!err.matches(PyExc_TypeError)) {
      raise_value_error(std::string(name) + " cannot be shared through DLPack: " + err.what());
    }
  }
  try {  // a producer older than DLPack 1.0 takes no max_version
    return method();
  } catch (py::error_already_set& err) {
    raise_value_error(std::string(name) + " cannot be shared through DLPack: " + err.what());
  }
}

}  // namespace

TensorArg::TensorArg(const char* name, py::handle object, bool writable) : name_(name) {
  if (object.is_none()) raise_type_error(name_ + " must be a tensor, got None");
  if (const TokenBitmask* owned = as_token_bitmask(object)) {  // our own memory: nothing to export
    ndim_ = 2;
    for (int d = 0; d < 2; ++d) {
      shape_[d] = owned->shape[d];
      strides_[d] = owned->strides[d];
    }
    known_dtype_ = true;
    dtype_ = DType::kInt32;
    dtype_name_ = dtype_name(dtype_);
    data_ = owned->data.get();
    return;
  }
  capsule_ = export_capsule(name, object);
  const char* capsule_name = PyCapsule_GetName(capsule_.ptr());
  DLTensor* tensor = nullptr;
  if (capsule_name != nullptr && std::string(capsule_name) == "dltensor_versioned") {
    auto* managed = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(capsule_.ptr(), capsule_name));
    if (managed == nullptr) throw py::error_already_set();
    if (managed->version.major != DLPACK_MAJOR_VERSION) {
      raise_value_error(name_ + " uses DLPack " + std::to_string(managed->version.major) + "." +
                        std::to_string(managed->version.minor) + "; this module reads DLPack 1.x");
    }
    if (writable && (managed->flags & DLPACK_FLAG_BITMASK_READ_ONLY)) {
      raise_value_error(name_ + " is read-only but this op writes to it");
    }
    tensor = &managed->dl_tensor;
  } else if (capsule_name != nullptr && std::string(capsule_name) == "dltensor") {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule_.ptr(), capsule_name));
    if (managed == nullptr) throw py::error_already_set();
    tensor = &managed->dl_tensor;
  } else {
    raise_type_error(name_ + " is a capsule that holds no unconsumed DLPack tensor (name " +
                     std::string(capsule_name ? capsule_name : "NULL") + ")");
  }

  if (tensor->ndim < 0 || tensor->ndim > 8) {
    raise_value_error(name_ + " has " + std::to_string(tensor->ndim) + " dimensions; at most 8 are supported");
  }
  ndim_ = tensor->ndim;
  int64_t compact = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    shape_[d] = tensor->shape[d];
    strides_[d] = tensor->strides ? tensor->strides[d] : compact;
    compact *= shape_[d];
  }
  known_dtype_ = dtype_from_dl(tensor->dtype, &dtype_);
  dtype_name_ = known_dtype_ ? dtype_name(dtype_) : describe_dl_dtype(tensor->dtype);
  device_id_ = tensor->device.device_id;
  if (tensor->device.device_type == kDLCPU) {
    device_ = DeviceKind::kCPU;
  } else if (tensor->device.device_type == kDLCUDA) {
    device_ = DeviceKind::kCUDA;
  } else {
    raise_value_error(name_ + " is on DLPack device type " + std::to_string(tensor->device.device_type) +
                      "; expected a CPU or CUDA tensor");
  }
  data_ = tensor->data ? static_cast<char*>(tensor->data) + tensor->byte_offset : nullptr;
}

int64_t TensorArg::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim_; ++d) n *= shape_[d];
  return n;
}

std::string TensorArg::shape_string() const {
  std::ostringstream text;
  text << "(";
  for (int d = 0; d < ndim_; ++d) text << (d ? ", " : "") << shape_[d];
  if (ndim_ == 1) text << ",";
  text << ")";
  return text.str();
}

std::string TensorArg::device_string() const {
  return device_ == DeviceKind::kCPU ? std::string("cpu") : "cuda:" + std::to_string(device_id_);
}

TensorArg& TensorArg::dtype_in(std::initializer_list<DType> allowed) {
  if (known_dtype_) {
    for (DType d : allowed) {
      if (d == dtype_) return *this;
    }
  }
  raise_type_error(name_ + " must have dtype " + dtype_list(allowed) + ", got " + dtype_name_);
}

TensorArg& TensorArg::rank(int expected) {
  if (ndim_ != expected) {
    raise_value_error(name_ + " must have " + std::to_string(expected) + " dimensions, got shape " + shape_string());
  }
  return *this;
}

TensorArg& TensorArg::dim_is(int dim, int64_t expected, const std::string& meaning) {
  if (shape_[dim] != expected) {
    raise_value_error(name_ + " must have size " + std::to_string(expected) + " in dimension " + std::to_string(dim) +
                      " (" + meaning + "), got shape " + shape_string());
  }
  return *this;
}

TensorArg& TensorArg::contiguous() { return compact_from(0); }

TensorArg& TensorArg::compact_from(int first_dim) {
  int64_t expected = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    bool ok = d >= first_dim ? (shape_[d] <= 1 || strides_[d] == expected) : (shape_[d] <= 1 || strides_[d] >= 0);
    if (!ok) {
      std::ostringstream text;
      text << name_ << (first_dim == 0 ? " must be contiguous" : " must be contiguous in its last " +
                                                                      std::to_string(ndim_ - first_dim) + " dimensions")
           << ", got strides (";
      for (int k = 0; k < ndim_; ++k) text << (k ? ", " : "") << strides_[k];
      text << ") for shape " << shape_string();
      raise_value_error(text.str());
    }
    if (d >= first_dim) expected *= shape_[d];
  }
  return *this;
}

TensorArg& TensorArg::same_device_as(const TensorArg& other) {
  if (device_ != other.device_ || device_id_ != other.device_id_) {
    raise_value_error(name_ + " must be on the same device as " + other.name_ + " (" + other.device_string() +
                      "), got " + device_string());
  }
  return *this;
}

}  // namespace llmkit
