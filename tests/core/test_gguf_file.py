"""llmkit's GGUF header reader against gguf-py's GGUFReader (the independent reference), and its errors."""

from __future__ import annotations

import struct

import gguf
import numpy as np
import pytest

from llmkit.core.models.gguf_file import GGUFFile, GGUFFormatError


def _reference(path):
    reader = gguf.GGUFReader(path)
    fields = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    return fields, reader.tensors


def _assert_same(path) -> None:
    fields, tensors = _reference(path)
    ours = GGUFFile(path)
    assert ours.fields == fields
    assert [t.name for t in ours.tensors] == [t.name for t in tensors]
    for mine, theirs in zip(ours.tensors, tensors, strict=True):
        assert mine.tensor_type == theirs.tensor_type
        assert mine.shape == tuple(int(d) for d in theirs.shape)
        assert mine.data.dtype == theirs.data.dtype and mine.data.shape == theirs.data.shape
        assert np.array_equal(mine.data, theirs.data)


def test_default_model_reads_like_gguf_py(smollm2_path):
    _assert_same(smollm2_path)


def test_every_value_type_and_tensor_kind(tmp_path):
    path = tmp_path / "kinds.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -7)
    writer.add_uint16("t.u16", 65000)
    writer.add_int16("t.i16", -300)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -5)
    writer.add_float32("t.f32", 0.25)
    writer.add_uint64("t.u64", 2**40)
    writer.add_int64("t.i64", -(2**40))
    writer.add_float64("t.f64", 1e-300)
    writer.add_bool("t.bool", True)
    writer.add_string("t.str", "héllo ✓")
    writer.add_array("t.ints", [1, 2, 3])
    writer.add_array("t.floats", [0.5, -1.5])
    writer.add_array("t.strs", ["a", "", "ünï"])
    rng = np.random.default_rng()
    writer.add_tensor("f32", rng.standard_normal((3, 64)).astype(np.float32))
    writer.add_tensor("f16", rng.standard_normal((2, 32)).astype(np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("q8", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    _assert_same(path)
    assert GGUFFile(path).fields["t.strs"] == ["a", "", "ünï"]


def test_not_gguf_and_truncated_files_are_clear_errors(tmp_path, smollm2_path):
    bad_magic = tmp_path / "bad.gguf"
    bad_magic.write_bytes(b"GGUX" + bytes(64))
    with pytest.raises(GGUFFormatError, match="magic"):
        GGUFFile(bad_magic)
    future = tmp_path / "v9.gguf"
    future.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    with pytest.raises(GGUFFormatError, match="version 9"):
        GGUFFile(future)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(smollm2_path.read_bytes()[:200_000])  # inside the vocabulary
    with pytest.raises(GGUFFormatError, match="past the end|ends inside"):
        GGUFFile(truncated)
