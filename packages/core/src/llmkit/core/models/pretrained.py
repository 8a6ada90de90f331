"""`load_pretrained`: a name or path in, a ready model + tokenizer + chat template out."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import ops
from ..chat_template import ChatTemplate
from ..errors import InvalidParameterError, ModelFormatError
from ..ops.quantized import ACTIVATIONS
from ..plugins import registry
from ..quant import QuantizedWeight
from ..quant import quantize as quantize_weight
from ..tokenizer import Tokenizer
from .checkpoint import Checkpoint
from .config import ModelConfig
from .llama import LlamaModel
from .quantized import QuantizedEmbedding, QuantizedLinear
from .quantized import as_stored as as_stored_weight
from .rope import RotaryEmbedding
from .store import DEFAULT_MODEL, resolve

logger = logging.getLogger(__name__)

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
        continue_final_message: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Token ids of `messages` rendered with the chat template (`template_kwargs`: extra template variables,
        e.g. `enable_thinking`; `continue_final_message`: the reply continues the final assistant message)."""
        if self.chat_template is None:
            raise ModelFormatError(f"{self.path} has no chat template; pass chat_template='chatml' (or another name)")
        text = self.chat_template.render(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            extra_variables=template_kwargs,
        )
        return self.tokenizer.encode(text)


def find_loader(path: Path) -> tuple[str, Any]:
    for name, loader in registry("model_loaders"):
        if loader.can_load(path):
            return name, loader
    known = ", ".join(registry("model_loaders").names())
    raise ModelFormatError(f"no model loader recognizes {path} (installed loaders: {known})")


WEIGHTS = ("as-stored", "float32", "bfloat16", "float16")
QUANTIZE_FORMATS = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k")


def load_checkpoint(path: Path, *, keep_stored: bool = False) -> Checkpoint:
    return find_loader(path)[1].load(path, keep_stored=keep_stored)


def choose_weights(weights: str | None, dtype: str | torch.dtype | None, checkpoint_format: str, device: str) -> str:
    """The `weights` mode: as asked; else a dense copy in `dtype` when one is given; else as-stored for GGUF
    files when a native quantized matmul runs on `device`, and float32 otherwise (logged: without the
    native kernels every stored matmul would decode its whole weight in torch on each call)."""
    if weights is not None:
        if weights not in WEIGHTS:
            raise InvalidParameterError(f"unknown weights mode {weights!r}; choose one of {', '.join(WEIGHTS)}")
        if weights == "as-stored" and dtype is not None and parse_dtype(dtype) != torch.float32:
            raise InvalidParameterError(
                f"weights='as-stored' computes in float32, but dtype={dtype!r} was asked for; drop dtype, or "
                f"ask for a dense copy with weights='{_dtype_name(parse_dtype(dtype))}'"
            )
        if weights != "as-stored" and dtype is not None and parse_dtype(dtype) != DTYPES[weights]:
            raise InvalidParameterError(f"weights={weights!r} and dtype={dtype!r} disagree; pass one of them")
        return weights
    if dtype is not None:
        return _dtype_name(parse_dtype(dtype))
    if checkpoint_format != "gguf":
        return "float32"
    if ops.implementation("quantized_matmul", device) is ops.reference("quantized_matmul"):
        logger.warning(
            "no native quantized matmul for %s (install llmkit-kernels: `pip install .` at the repository root): "
            "dequantizing the GGUF weights to float32; weights='as-stored' runs the slow torch reference instead",
            device,
        )
        return "float32"
    return "as-stored"


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]


def _is_matrix(name: str) -> bool:
    return name.endswith(("proj.weight", "embed_tokens.weight", "lm_head.weight"))


def build_model(
    checkpoint: Checkpoint,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    *,
    as_stored: bool = False,
    quantize: str | None = None,
    activations: str = "float32",
) -> LlamaModel:
    """Instantiate `LlamaModel` directly over the checkpoint tensors (no second copy of the weights).

    With `as_stored`, matrices stay as the checkpoint holds them (`QuantizedLinear`/`QuantizedEmbedding`,
    float32 activations, or int8-rounded ones with `activations="int8"`); `quantize` ("q8_0", "q4_0",
    "q4_k", ...) first quantizes float matrices."""
    if activations not in ACTIVATIONS:
        raise InvalidParameterError(f"activations must be one of {', '.join(ACTIVATIONS)}, got {activations!r}")
    if activations != "float32" and not (as_stored or quantize):
        raise InvalidParameterError(
            "activations='int8' needs weights kept as stored (weights='as-stored' or quantize=)"
        )
    config = checkpoint.config
    with torch.device("meta"), skip_init_on_meta():
        model = LlamaModel(config)
    stored = {}
    if as_stored or quantize is not None:
        dtype = torch.float32
        for name, tensor in checkpoint.tensors.items():
            if not _is_matrix(name):
                continue
            if quantize is not None and not isinstance(tensor, QuantizedWeight):
                tensor = quantize_weight(tensor.float(), quantize)
            elif not isinstance(tensor, QuantizedWeight):
                tensor = as_stored_weight(tensor)
            stored[name] = tensor.to(device)
    tensors = {name: t.to(device=device, dtype=dtype) for name, t in checkpoint.tensors.items() if name not in stored}
    for name, weight in stored.items():
        owner_name, _, _ = name.rpartition(".")
        parent_name, _, child = owner_name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if child == "embed_tokens":
            setattr(parent, child, QuantizedEmbedding(weight, activations))
        else:
            bias = tensors.pop(owner_name + ".bias", None)
            setattr(parent, child, QuantizedLinear(weight, bias, activations))
    model.load_state_dict(tensors, strict=False, assign=True)
    _check_loaded(model, stored)
    model.rotary = RotaryEmbedding(
        config.head_dim, config.rope_theta, config.rope_scaling, config.max_position_embeddings
    ).to(device)
    return model.eval()


@contextlib.contextmanager
def skip_init_on_meta():
    """Meta-device `nn.Linear`/`nn.Embedding` skip their random init while the model is built: the
    checkpoint's tensors replace every parameter, and a random init of meta tensors imports torch's
    meta decompositions (~800 modules, +73 MB RSS for the life of the process). Modules on a real
    device (any other thread's) initialize as usual."""
    originals = {cls: cls.reset_parameters for cls in (nn.Linear, nn.Embedding)}

    def skip_on_meta(original):
        def reset_parameters(self):
            if not self.weight.is_meta:
                original(self)

        return reset_parameters

    for cls, original in originals.items():
        cls.reset_parameters = skip_on_meta(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.reset_parameters = original


def _check_loaded(model: LlamaModel, stored: dict) -> None:
    """Every parameter has a value (load_state_dict ran non-strict because stored layers replaced some)."""
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ModelFormatError(f"checkpoint lacks the tensor {missing[0]!r}")


def load_pretrained(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    dtype: str | torch.dtype | None = None,
    weights: str | None = None,
    quantize: str | None = None,
    activations: str | None = None,
    device: str | torch.device = "cpu",
    chat_template: str | None = None,
    pull_missing: bool = True,
    quiet: bool = False,
) -> Pretrained:
    """Load a catalog model (pulled on first use), a .gguf file or an HF-layout directory.

    `weights`: "as-stored" keeps matrices in the file's format (GGUF blocks memory-mapped, or bf16/fp16)
    and computes in float32 -- the default for GGUF; "float32" / "bfloat16" / "float16" make a dense copy
    (the default for HF directories is `dtype`, float32 unless given). `quantize` ("q8_0", "q4_0", "q4_k",
    ...) quantizes float matrices at load and keeps them stored. `activations="int8"` rounds matmul inputs
    to int8 per 32 columns for Q8_0/Q4_0/Q4_1 weights (llama.cpp's scheme: faster, slightly less exact).
    `chat_template` overrides the model's own: a registered name ("chatml", "llama3") or a .jinja path.
    """
    if quantize is not None and quantize not in QUANTIZE_FORMATS:
        raise InvalidParameterError(
            f"unknown quantize format {quantize!r}; choose one of {', '.join(QUANTIZE_FORMATS)}"
        )
    path = resolve(name_or_path, pull_missing=pull_missing, quiet=quiet)
    loader_name, loader = find_loader(path)
    is_gguf = loader_name == "gguf" or (path.is_file() and path.suffix == ".gguf")
    device_type = torch.device(device).type
    mode = (
        "as-stored"
        if quantize is not None
        else choose_weights(weights, dtype, "gguf" if is_gguf else "hf", device_type)
    )
    checkpoint = loader.load(path, keep_stored=mode == "as-stored")
    dense = torch.float32 if mode == "as-stored" else DTYPES[mode]
    model = build_model(
        checkpoint,
        dense,
        device,
        as_stored=mode == "as-stored",
        quantize=quantize,
        activations=activations or "float32",
    )
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
