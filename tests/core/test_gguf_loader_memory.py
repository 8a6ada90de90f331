"""Resident memory of a GGUF load with matrices kept as stored: after `load`, none of the file's pages stay
mapped into the process (the header, llama's Q/K rows copied for RoPE, the norms), and a stored matrix
read afterwards still gives the file's bytes."""

from __future__ import annotations

import sys

import gguf
import numpy as np
import pytest
import torch
from resident_memory import resident_kib

from llmkit.core.models.checkpoint import expected_tensor_names
from llmkit.core.models.config import ModelConfig
from llmkit.core.models.gguf_file import GGUFFile
from llmkit.core.models.gguf_loader import GGUFLoader
from llmkit.core.models.pretrained import load_checkpoint

from .gguf_writer import write_gguf

HIDDEN, HEADS, KV_HEADS = 512, 8, 4
CONFIG = dict(
    vocab_size=384,
    hidden_size=HIDDEN,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=HEADS,
    num_key_value_heads=KV_HEADS,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
)


def tiny_state_dict(seed: int) -> dict[str, torch.Tensor]:
    config = ModelConfig(
        architecture="llama",
        vocab_size=CONFIG["vocab_size"],
        hidden_size=HIDDEN,
        intermediate_size=CONFIG["intermediate_size"],
        num_layers=CONFIG["num_hidden_layers"],
        num_heads=HEADS,
        num_kv_heads=KV_HEADS,
        head_dim=HIDDEN // HEADS,
        max_position_embeddings=CONFIG["max_position_embeddings"],
        rms_norm_eps=CONFIG["rms_norm_eps"],
        tie_word_embeddings=True,
    )
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name in expected_tensor_names(config):
        if name.endswith("norm.weight"):
            state[name] = 1 + 0.1 * torch.randn(HIDDEN, generator=generator)
            continue
        module = name.removesuffix(".weight").rsplit(".", 1)[-1]
        rows = {
            "q_proj": HIDDEN,
            "k_proj": KV_HEADS * HIDDEN // HEADS,
            "v_proj": KV_HEADS * HIDDEN // HEADS,
            "o_proj": HIDDEN,
            "gate_proj": CONFIG["intermediate_size"],
            "up_proj": CONFIG["intermediate_size"],
            "down_proj": HIDDEN,
            "embed_tokens": CONFIG["vocab_size"],
        }[module]
        cols = CONFIG["intermediate_size"] if module == "down_proj" else HIDDEN
        state[name] = torch.randn(rows, cols, generator=generator)
    return state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident pages are read from /proc")
def test_keep_stored_load_leaves_no_file_pages_resident(tmp_path, tiny_model_dir):
    path = tmp_path / "tiny.gguf"
    tokenizer = load_checkpoint(tiny_model_dir).tokenizer.backend
    seed = int(np.random.default_rng().integers(2**31))
    write_gguf(path, CONFIG, tiny_state_dict(seed), tokenizer, quantize=lambda _: gguf.GGMLQuantizationType.Q8_0)

    checkpoint = GGUFLoader().load(path, keep_stored=True)

    up = checkpoint.tensors["layers.1.mlp.up_proj.weight"]
    # Before the release the header and both layers' Q/K rows (read to reorder them) were resident: ~800 KiB.
    assert resident_kib(up.data.data_ptr()) <= 16
    # Pages fault back from the file: the stored bytes are the file's, read through a mapping of its own.
    in_file = next(t for t in GGUFFile(path).tensors if t.name == "blk.1.ffn_up.weight")
    assert np.array_equal(up.data.numpy(), np.asarray(in_file.data).reshape(up.rows, -1))
