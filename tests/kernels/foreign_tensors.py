"""Hand-made DLPack capsules, to test device checks without a GPU (the data pointer is never read)."""

from __future__ import annotations

import ctypes

K_DL_CPU, K_DL_CUDA, K_DL_VULKAN = 1, 2, 7
K_DL_FLOAT = 2


class _Device(ctypes.Structure):
    _fields_ = (("device_type", ctypes.c_int), ("device_id", ctypes.c_int32))


class _DataType(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16))


class _Tensor(ctypes.Structure):
    _fields_ = (
        ("data", ctypes.c_void_p),
        ("device", _Device),
        ("ndim", ctypes.c_int32),
        ("dtype", _DataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    )


class _Managed(ctypes.Structure):
    _fields_ = (("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p))


_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)


class ForeignTensor:
    """A float32 tensor of `shape` that claims to live on `device_type` (object with __dlpack__)."""

    def __init__(self, shape: tuple[int, ...], device_type: int, device_id: int = 0):
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self._managed = _Managed()
        tensor = self._managed.dl_tensor
        tensor.data = 0x1000  # never dereferenced: the checks reject the tensor first
        tensor.device = _Device(device_type, device_id)
        tensor.ndim = len(shape)
        tensor.dtype = _DataType(K_DL_FLOAT, 32, 1)
        tensor.shape = self._shape
        tensor.strides = None
        tensor.byte_offset = 0

    def __dlpack__(self, **_kwargs):
        return _new_capsule(ctypes.addressof(self._managed), b"dltensor", None)
