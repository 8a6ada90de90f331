"""`load_pretrained`: a name or path in, a ready model + tokenizer + chat template out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..chat_template import ChatTemplate
from ..errors import InvalidParameterError, ModelFormatError
from ..plugins import registry
from ..tokenizer import Tokenizer
from .checkpoint import Checkpoint
from .config import ModelConfig
from .llama import LlamaModel
from .rope import RotaryEmbedding
from .store import DEFAULT_MODEL, resolve

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InvalidParameterError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


@dataclasses.dataclass
class Pretrained:
    """A loaded model with everything needed to talk to it."""

    model: LlamaModel
    tokenizer: Tokenizer
    chat_template: ChatTemplate | None
    path: Path
    format: str

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def chat_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Token ids of `messages` rendered with the chat template."""
        if self.chat_template is None:
            raise ModelFormatError(f"{self.path} has no chat template; pass chat_template='chatml' (or another name)")
        text = self.chat_template.render(messages, tools=tools, add_generation_prompt=add_generation_prompt)
        return self.tokenizer.encode(text)


def find_loader(path: Path) -> tuple[str, Any]:
    for name, loader in registry("model_loaders"):
        if loader.can_load(path):
            return name, loader
    known = ", ".join(registry("model_loaders").names())
    raise ModelFormatError(f"no model loader recognizes {path} (installed loaders: {known})")


def load_checkpoint(path: Path) -> Checkpoint:
    return find_loader(path)[1].load(path)


def build_model(
    checkpoint: Checkpoint, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> LlamaModel:
    """Instantiate `LlamaModel` directly over the checkpoint tensors (no second copy of the weights)."""
    config = checkpoint.config
    with torch.device("meta"):
        model = LlamaModel(config)
    tensors = {name: t.to(device=device, dtype=dtype) for name, t in checkpoint.tensors.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    model.rotary = RotaryEmbedding(
        config.head_dim, config.rope_theta, config.rope_scaling, config.max_position_embeddings
    ).to(device)
    return model.eval()


def load_pretrained(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    chat_template: str | None = None,
    pull_missing: bool = True,
    quiet: bool = False,
) -> Pretrained:
    """Load a catalog model (pulled on first use), a .gguf file or an HF-layout directory.

    `chat_template` overrides the model's own: a registered name ("chatml", "llama3") or a .jinja path.
    """
    path = resolve(name_or_path, pull_missing=pull_missing, quiet=quiet)
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint, parse_dtype(dtype), device)
    tokenizer = checkpoint.tokenizer
    template = _choose_template(chat_template, checkpoint.chat_template, tokenizer)
    return Pretrained(model, tokenizer, template, path, checkpoint.format)


def _choose_template(override: str | None, own: str | None, tokenizer: Tokenizer) -> ChatTemplate | None:
    specials = {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}
    if override is None:
        return ChatTemplate(own, name="model", **specials) if own else None
    if override.endswith(".jinja") or os.sep in override:
        file = Path(override).expanduser()
        if not file.is_file():
            raise ModelFormatError(f"chat template file {override} does not exist")
        return ChatTemplate(file.read_text(), name=file.name, **specials)
    return ChatTemplate.named(override, **specials)
