#include "binding/token_bitmask.h"

#include <Python.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "binding/tensor_arg.h"
#include "dlpack/dlpack.h"

using namespace pybind11::literals;

namespace llmkit {

namespace {

// Set once when the class is bound; they live as long as the module.
PyTypeObject* token_bitmask_type = nullptr;
py::detail::type_info* token_bitmask_info = nullptr;

int32_t* allocate_zeroed(int64_t count) {
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(int32_t) + 63) / 64) * 64;
  void* memory = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (memory == nullptr) throw std::bad_alloc();
  std::memset(memory, 0, bytes == 0 ? 64 : bytes);
  return static_cast<int32_t*>(memory);
}

// What a DLPack view owns: a share of the memory and its own copy of the shape and strides.
template <class Managed>
struct View {
  Managed managed{};
  std::shared_ptr<int32_t> data;
  int64_t shape[2];
  int64_t strides[2];
};

template <class Managed>
void delete_view(Managed* managed) {
  delete static_cast<View<Managed>*>(managed->manager_ctx);
}

template <class Managed>
void capsule_destructor(PyObject* capsule) {
  // A consumer renames the capsule when it takes ownership; an unconsumed one still holds its view.
  const char* name = Managed::kName;
  if (!PyCapsule_IsValid(capsule, name)) return;
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
}

struct Legacy : DLManagedTensor {
  static constexpr const char* kName = "dltensor";
};
struct Versioned : DLManagedTensorVersioned {
  static constexpr const char* kName = "dltensor_versioned";
};

template <class Managed>
py::capsule export_view(const TokenBitmask& bitmask) {
  auto* view = new View<Managed>();
  view->data = bitmask.data;
  for (int d = 0; d < 2; ++d) {
    view->shape[d] = bitmask.shape[d];
    view->strides[d] = bitmask.strides[d];
  }
  DLTensor& t = view->managed.dl_tensor;
  t.data = view->data.get();
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = 2;
  t.dtype = DLDataType{kDLInt, 32, 1};
  t.shape = view->shape;
  t.strides = view->strides;
  t.byte_offset = 0;
  view->managed.manager_ctx = view;
  if constexpr (std::is_same_v<Managed, Versioned>) {
    view->managed.version = DLPackVersion{DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION};
    view->managed.flags = 0;
    view->managed.deleter = [](DLManagedTensorVersioned* m) { delete_view(static_cast<Versioned*>(m)); };
  } else {
    view->managed.deleter = [](DLManagedTensor* m) { delete_view(static_cast<Legacy*>(m)); };
  }
  PyObject* capsule = PyCapsule_New(&view->managed, Managed::kName, &capsule_destructor<Managed>);
  if (capsule == nullptr) {
    delete view;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

// The array API's __dlpack__: the memory is shared, never copied, and lives on the CPU.
py::capsule dlpack(const TokenBitmask& self, py::object stream, py::object max_version, py::object dl_device,
                   py::object copy) {
  if (!stream.is_none()) raise_buffer_error("a TokenBitmask lives on the CPU; __dlpack__ takes no stream");
  if (!copy.is_none() && py::bool_(copy)) raise_buffer_error("a TokenBitmask is shared, never copied (copy=True)");
  if (!dl_device.is_none()) {
    const py::sequence device = py::reinterpret_borrow<py::sequence>(dl_device);
    if (!PySequence_Check(dl_device.ptr()) || py::len(device) != 2 || py::int_(device[0]).cast<int>() != kDLCPU ||
        py::int_(device[1]).cast<int>() != 0) {
      raise_buffer_error("a TokenBitmask lives on the CPU; it cannot be exported to DLPack device " +
                         std::string(py::repr(dl_device)));
    }
  }
  bool versioned = false;
  if (!max_version.is_none()) {
    if (!PySequence_Check(max_version.ptr()) || py::len(max_version) < 1) {
      raise_type_error("max_version must be a (major, minor) tuple, got " + std::string(py::repr(max_version)));
    }
    versioned = py::int_(py::reinterpret_borrow<py::sequence>(max_version)[0]).cast<int>() >= 1;
  }
  return versioned ? export_view<Versioned>(self) : export_view<Legacy>(self);
}

}  // namespace

TokenBitmask::TokenBitmask(int64_t rows, int64_t words)
    : data(allocate_zeroed(rows * words), [](int32_t* p) { std::free(p); }),
      shape{rows, words},
      strides{words, 1} {}

TokenBitmask* as_token_bitmask(py::handle object) {
  if (token_bitmask_type == nullptr || !PyObject_TypeCheck(object.ptr(), token_bitmask_type)) return nullptr;
  auto* instance = reinterpret_cast<py::detail::instance*>(object.ptr());
  // The TokenBitmask part by its type, so a class deriving from two bound classes is read right.
  py::detail::value_and_holder held = instance->get_value_and_holder(token_bitmask_info, false);
  if (held.inst == nullptr || !held.holder_constructed()) {  // e.g. a subclass whose __init__ skipped the base's
    raise_type_error(std::string(Py_TYPE(object.ptr())->tp_name) + " is a TokenBitmask that was never initialized");
  }
  return static_cast<TokenBitmask*>(held.value_ptr());
}

void bind_token_bitmask(py::module_& m) {
  auto cls =
      py::class_<TokenBitmask>(m, "TokenBitmask",
                               "An int32 [rows, words] CPU token bitmask in memory the native module owns: the "
                               "native matcher fills it with no DLPack export, and torch.from_dlpack views it.")
          .def(py::init([](int64_t rows, int64_t words) {
                 if (rows < 1 || words < 1 || rows > (int64_t{1} << 40) / words) {
                   raise_value_error("a TokenBitmask needs rows >= 1, words >= 1 and rows * words <= 2**40, got rows=" +
                                     std::to_string(rows) + ", words=" + std::to_string(words));
                 }
                 return TokenBitmask(rows, words);
               }),
               "rows"_a, "words"_a)
          .def_property_readonly("shape", [](const TokenBitmask& self) {
            return py::make_tuple(self.shape[0], self.shape[1]);
          })
          .def("__dlpack__", &dlpack, py::kw_only(), "stream"_a = py::none(), "max_version"_a = py::none(),
               "dl_device"_a = py::none(), "copy"_a = py::none())
          .def("__dlpack_device__", [](const TokenBitmask&) { return py::make_tuple(int(kDLCPU), 0); });
  token_bitmask_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  token_bitmask_info = py::detail::get_type_info(typeid(TokenBitmask));
}

}  // namespace llmkit
