"""LoRA (Hu et al. 2021): a low-rank update (alpha / r) * B @ A beside frozen linear weights.

`LoRALinear` takes over an `nn.Linear`'s own weight and bias Parameters (no copy), so the model keeps
the parameter names of `LlamaModel.state_dict()` and adds `<layer>.lora_A` / `<layer>.lora_B`. The
serving engine runs the same module objects, so rollouts see the current adapters.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class LoRALinear(nn.Linear):
    """`nn.Linear` plus a trainable low-rank update; B starts at zero, so the model starts unchanged."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        factory = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.adapter_enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if not self.adapter_enabled:
            return out
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)
        return out + update * self.scaling

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, rank={self.rank}, alpha={self.alpha}"


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    return ((name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear))


def apply_lora(
    model: nn.Module, rank: int, alpha: float, dropout: float = 0.0, targets: Sequence[str] = ()
) -> list[str]:
    """Wrap every linear layer whose name ends with a target (q_proj, ...) and freeze all other weights.
    Returns the wrapped layer names."""
    for param in model.parameters():
        param.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear and child_name in targets:
                setattr(module, child_name, LoRALinear(child, rank, alpha, dropout))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(f"no linear layer named {list(targets)} to put LoRA adapters on")
    return wrapped


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Run the base model (the DPO/PPO/GRPO reference under LoRA) without copying it."""
    layers = [m for _, m in lora_layers(model)]
    previous = [m.adapter_enabled for m in layers]
    for m in layers:
        m.adapter_enabled = False
    try:
        yield
    finally:
        for m, state in zip(layers, previous, strict=True):
            m.adapter_enabled = state


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each update into its base weight and put plain `nn.Linear`s back (same Parameters, same names)."""
    for _, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                child.weight.add_(child.delta_weight().to(child.weight.dtype))
                plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
                plain.weight, plain.bias = child.weight, child.bias
                setattr(module, child_name, plain)
    return model


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, named `<layer>.lora_A` / `<layer>.lora_B`."""
    return {k: v for k, v in model.state_dict().items() if k.endswith((".lora_A", ".lora_B"))}


def adapter_config(model: nn.Module, base_model: str) -> dict:
    layers = list(lora_layers(model))
    if not layers:
        raise ValueError("the model has no LoRA adapters")
    first = layers[0][1]
    return {
        "rank": first.rank,
        "alpha": first.alpha,
        "targets": sorted({name.rsplit(".", 1)[-1] for name, _ in layers}),
        "base_model": base_model,
        "format": "llmkit-lora",
    }


def save_adapters(model: nn.Module, directory: str | Path, base_model: str) -> Path:
    """adapter_model.safetensors + adapter_config.json (rank, alpha, targets, base model)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in adapter_state_dict(model).items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS))
    (directory / ADAPTER_CONFIG).write_text(json.dumps(adapter_config(model, base_model), indent=2))
    return directory


def load_adapters(model: nn.Module, directory: str | Path, dropout: float = 0.0) -> nn.Module:
    """Put saved adapters on a base model (wrapping its layers first if needed)."""
    directory = Path(directory)
    config_file = directory / ADAPTER_CONFIG
    if not config_file.is_file():
        raise CheckpointError(f"{directory} has no {ADAPTER_CONFIG}")
    config = json.loads(config_file.read_text())
    if not any(True for _ in lora_layers(model)):
        apply_lora(model, config["rank"], config["alpha"], dropout, config["targets"])
    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    expected = set(adapter_state_dict(model))
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise CheckpointError(
            f"adapters in {directory} do not fit the model (missing {missing[:2]}, extra {extra[:2]})"
        )
    model.load_state_dict(tensors, strict=False)
    return model
