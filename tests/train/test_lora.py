"""LoRA: parameter names, an unchanged start, merging, adapters saved alone, and the frozen base."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from llmkit.core import load_pretrained
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.train.errors import CheckpointError
from llmkit.train.modeling import (
    LoRALinear,
    adapter_state_dict,
    adapters_disabled,
    apply_lora,
    load_adapters,
    merge_lora,
    save_adapters,
    save_pretrained,
)

TARGETS = ("q_proj", "v_proj", "down_proj")


def logits(model, ids):
    hidden = model(ids, torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
    return model.compute_logits(hidden)


def perturb(model):
    with torch.no_grad():
        for _, module in model.named_modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(std=0.05)


@pytest.fixture
def model(tiny_model_dir):
    return load_pretrained(tiny_model_dir).model


def test_names_kept_and_base_frozen(model):
    names = set(model.state_dict())
    ids = torch.arange(3, 20)
    before = logits(model, ids)
    wrapped = apply_lora(model, rank=4, alpha=8, targets=TARGETS)
    assert len(wrapped) == 3 * model.config.num_layers
    assert names <= set(model.state_dict())  # every base name is unchanged
    extra = set(model.state_dict()) - names
    assert extra == {f"{w}.lora_{x}" for w in wrapped for x in "AB"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == extra
    torch.testing.assert_close(logits(model, ids), before)  # B starts at zero


def test_merge_equals_adapted_model_and_restores_plain_linears(model):
    apply_lora(model, rank=4, alpha=8, targets=TARGETS)
    perturb(model)
    ids = torch.arange(3, 20)
    adapted = logits(model, ids)
    with adapters_disabled(model):
        base = logits(model, ids)
    assert not torch.allclose(adapted, base)
    merged = merge_lora(copy.deepcopy(model))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert not any(k.endswith(("lora_A", "lora_B")) for k in merged.state_dict())
    torch.testing.assert_close(logits(merged, ids), adapted, atol=1e-5, rtol=1e-5)


def test_adapters_saved_alone_and_loaded(model, tiny_model_dir, tmp_path):
    apply_lora(model, rank=4, alpha=8, targets=TARGETS)
    perturb(model)
    ids = torch.arange(3, 20)
    expected = logits(model, ids)
    directory = save_adapters(model, tmp_path / "adapters", str(tiny_model_dir))
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    assert set(tensors) == set(adapter_state_dict(model))
    assert sum(t.numel() for t in tensors.values()) < 0.2 * sum(p.numel() for p in model.parameters())
    fresh = load_pretrained(tiny_model_dir).model
    load_adapters(fresh, directory)
    torch.testing.assert_close(logits(fresh, ids), expected)
    other = load_pretrained(tiny_model_dir).model
    apply_lora(other, rank=2, alpha=8, targets=("k_proj",))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_adapters(other, directory)


def test_merged_model_saves_as_a_loadable_hf_directory(tiny, tmp_path):
    pretrained = copy.copy(tiny)
    pretrained.model = copy.deepcopy(tiny.model)
    apply_lora(pretrained.model, rank=4, alpha=8, targets=TARGETS)
    perturb(pretrained.model)
    ids = torch.arange(3, 20)
    expected = logits(pretrained.model, ids)
    with pytest.raises(ValueError, match="merge"):
        save_pretrained(pretrained, tmp_path / "unmerged")
    merged = merge_lora(pretrained.model)
    save_pretrained(pretrained, tmp_path / "model", merged)
    reloaded = load_pretrained(tmp_path / "model")
    torch.testing.assert_close(logits(reloaded.model, ids), expected, atol=1e-5, rtol=1e-5)
    assert reloaded.chat_template.source == tiny.chat_template.source
    assert reloaded.tokenizer.eos_token_ids == tiny.tokenizer.eos_token_ids
