"""A GGUF language model plus its `mmproj` GGUF (llama.cpp's clip/mtmd vision file) as a LLaVA model.

The mmproj file (architecture "clip") holds the vision tower as `v.*` tensors and the projector as `mm.*`; its
metadata (`clip.vision.*`) gives the tower's shape and the image mean/std. llmkit reads the `mlp` projector
(LLaVA-1.5 style: mm.0 -> GELU -> mm.2) over a CLIP tower (class token, pre-norm) or a SigLIP one, and computes
what llama.cpp's llava graph computes: the hidden states of `clip.vision.feature_layer` (or, without that key,
of layer block_count - 1), the post norm on the deepest one when the file has `v.post_ln`, the class token
dropped, GELU as ggml's (tanh approximation) in the tower (`clip.use_gelu`, else quick GELU) and projector."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf.quants import dequantize

from ...errors import ModelFormatError
from ...quant import QuantizedWeight
from ..checkpoint import Checkpoint
from ..gguf_file import GGUFFile
from ..gguf_loader import STORED_TENSOR_TYPES, SUPPORTED_TENSOR_TYPES
from ..gguf_loader import _stored_matrix as stored_matrix
from .config import VisionConfig
from .llava_config import LlavaConfig

IMAGE_TOKEN = "<image>"
# The weights of linear layers (tower attention and MLP, projector): kept as stored with `keep_stored`.
_LINEAR_WEIGHTS = ("_proj.weight", ".fc1.weight", ".fc2.weight", ".linear_1.weight", ".linear_2.weight")
logger = logging.getLogger(__name__)
_GLOBAL_NAMES = {
    "v.class_embd": "vision_tower.embeddings.class_embedding",
    "v.patch_embd.weight": "vision_tower.embeddings.patch_embedding.weight",
    "v.patch_embd.bias": "vision_tower.embeddings.patch_embedding.bias",
    "v.position_embd.weight": "vision_tower.embeddings.position_embedding.weight",
    "v.pre_ln.weight": "vision_tower.pre_layrnorm.weight",
    "v.pre_ln.bias": "vision_tower.pre_layrnorm.bias",
    "v.post_ln.weight": "vision_tower.post_layernorm.weight",
    "v.post_ln.bias": "vision_tower.post_layernorm.bias",
    "mm.0.weight": "multi_modal_projector.linear_1.weight",
    "mm.0.bias": "multi_modal_projector.linear_1.bias",
    "mm.2.weight": "multi_modal_projector.linear_2.weight",
    "mm.2.bias": "multi_modal_projector.linear_2.bias",
}
_BLOCK_NAMES = {
    "ln1": "layer_norm1",
    "ln2": "layer_norm2",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_out": "self_attn.out_proj",
    "ffn_up": "mlp.fc1",
    "ffn_down": "mlp.fc2",
}


def mmproj_tensor_name(gguf_name: str) -> str | None:
    """Our (transformers') name for an mmproj tensor; None for one a LLaVA model does not use."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) == 5 and parts[:2] == ["v", "blk"] and parts[3] in _BLOCK_NAMES:
        return f"vision_tower.encoder.layers.{parts[2]}.{_BLOCK_NAMES[parts[3]]}.{parts[4]}"
    return None


def with_mmproj(text: Checkpoint, mmproj: Path, *, keep_stored: bool = False) -> Checkpoint:
    """The GGUF language model's checkpoint with the mmproj file's vision tower, projector and image settings in
    `metadata`, as the HF "llava" loader lays them out; with `keep_stored` the linear layers' weights stay as
    the file stores them (`QuantizedWeight`s over the memory map, in the formats the kernels cover)."""
    try:
        reader = GGUFFile(mmproj)
    except (ValueError, OSError) as err:
        raise ModelFormatError(f"{mmproj} is not a readable GGUF file ({type(err).__name__}: {err})") from None
    fields = reader.fields
    if fields.get("general.architecture") != "clip":
        raise ModelFormatError(
            f"{mmproj} has architecture {fields.get('general.architecture')!r}; an mmproj file has 'clip'"
        )
    if not fields.get("clip.has_vision_encoder", False):
        raise ModelFormatError(f"{mmproj} holds no vision encoder (clip.has_vision_encoder)")
    projector = fields.get("clip.projector_type") or fields.get("clip.vision.projector_type")
    if projector is None and fields.get("clip.has_llava_projector"):
        projector = "mlp"
    if projector != "mlp":
        raise ModelFormatError(
            f"{mmproj} has projector type {projector!r}; llmkit reads the LLaVA 'mlp' projector of mmproj files"
        )
    tensors = _read_tensors(reader, mmproj, keep_stored)
    image_token = text.tokenizer.token_to_id(IMAGE_TOKEN)
    if image_token is None:
        raise ModelFormatError(
            f"the language model {text.path.name} has no {IMAGE_TOKEN} token to hold image embeddings in a prompt"
        )
    config = _config(fields, tensors, text, image_token, mmproj)
    _unswap_legacy_ffn(tensors, config.vision)
    for name in [n for n in tensors if _layer_index(n) >= config.vision.num_layers]:
        del tensors[name]  # the legacy converter keeps the layers past block_count; clip.cpp never reads them
    size = config.vision.image_size
    image_processor = {
        "size": {"shortest_edge": size},
        "crop_size": {"height": size, "width": size},
        "do_pad": True,  # llama.cpp pads a LLaVA-1.5 image to a square of the mean colour, then resizes
        "image_mean": _required(fields, "clip.vision.image_mean", mmproj),
        "image_std": _required(fields, "clip.vision.image_std", mmproj),
    }
    text.metadata = {
        **text.metadata,
        "vision_language": config,
        "vision_tensors": tensors,
        "image_processor": image_processor,
        "processor": {},
        "mmproj": mmproj,
    }
    return text


def _config(fields: dict[str, Any], tensors: dict, text: Checkpoint, image_token: int, path: Path) -> LlavaConfig:
    if fields.get("clip.use_silu"):
        raise ModelFormatError(f"{path}: a SiLU vision tower (clip.use_silu) is not one llmkit runs")
    vision = VisionConfig(
        hidden_size=int(_required(fields, "clip.vision.embedding_length", path)),
        intermediate_size=int(_required(fields, "clip.vision.feed_forward_length", path)),
        num_layers=int(_required(fields, "clip.vision.block_count", path)),
        num_heads=int(_required(fields, "clip.vision.attention.head_count", path)),
        image_size=int(_required(fields, "clip.vision.image_size", path)),
        patch_size=int(_required(fields, "clip.vision.patch_size", path)),
        layer_norm_eps=float(_required(fields, "clip.vision.attention.layer_norm_epsilon", path)),
        hidden_act="gelu_pytorch_tanh" if fields.get("clip.use_gelu") else "quick_gelu",
    )
    feature_layers = fields.get("clip.vision.feature_layer")
    if not feature_layers:
        feature_layers = [vision.num_layers - 1]  # llama.cpp: the second-to-last layer of the file
    class_token = "vision_tower.embeddings.class_embedding" in tensors
    if "multi_modal_projector.linear_2.weight" not in tensors:
        raise ModelFormatError(f"{path} lacks the projector's second layer mm.2")
    projected = tensors["multi_modal_projector.linear_2.weight"].shape[0]
    if projected != text.config.hidden_size:
        raise ModelFormatError(
            f"{path} projects images to width {projected}; the language model's is {text.config.hidden_size}"
        )
    return LlavaConfig(
        text=text.config,
        vision=vision,
        tower="clip" if class_token else "siglip",
        feature_layers=tuple(int(f) for f in feature_layers),
        drop_first_token=class_token,
        projector_act="gelu_pytorch_tanh",  # ggml_gelu
        projector_bias=True,
        image_token_id=image_token,
        post_norm_last="vision_tower.post_layernorm.weight" in tensors,
        model_type="llava-mmproj",
    )


def _read_tensors(reader: GGUFFile, path: Path, keep_stored: bool) -> dict[str, torch.Tensor | QuantizedWeight]:
    tensors: dict[str, torch.Tensor | QuantizedWeight] = {}
    for info in reader.tensors:
        name = mmproj_tensor_name(info.name)
        if name is None:
            raise ModelFormatError(f"{path} holds a tensor {info.name!r} that an mlp (LLaVA) mmproj does not have")
        if info.tensor_type not in SUPPORTED_TENSOR_TYPES:
            raise ModelFormatError(f"tensor {info.name!r} in {path} has type {info.tensor_type.name}")
        linear = len(info.shape) == 2 and name.endswith(_LINEAR_WEIGHTS)
        if keep_stored and linear and info.tensor_type in STORED_TENSOR_TYPES:
            tensors[name] = stored_matrix(info, path, None)
            continue
        if keep_stored and linear:
            logger.warning(
                "%s: tensor %r is %s, which the native kernels do not cover; dequantized to float32",
                path.name,
                info.name,
                info.tensor_type.name,
            )
        try:
            array = dequantize(np.asarray(info.data), info.tensor_type)
        except Exception as err:
            raise ModelFormatError(f"tensor {info.name!r} in {path} is corrupt: {err}") from None
        tensors[name] = torch.from_numpy(np.array(array, dtype=np.float32))
    return tensors


def _unswap_legacy_ffn(tensors: dict[str, torch.Tensor | QuantizedWeight], vision: VisionConfig) -> None:
    """Files from llama.cpp's legacy converter name fc1 `ffn_down` and fc2 `ffn_up`; clip.cpp tells them by
    shape, and so does this: fc1 maps the hidden width to the intermediate one."""
    for layer in range(vision.num_layers):
        prefix = f"vision_tower.encoder.layers.{layer}.mlp."
        fc1 = tensors.get(prefix + "fc1.weight")
        if fc1 is not None and fc1.shape == (vision.hidden_size, vision.intermediate_size):
            for kind in ("weight", "bias"):
                first, second = prefix + f"fc1.{kind}", prefix + f"fc2.{kind}"
                if first in tensors and second in tensors:
                    tensors[first], tensors[second] = tensors[second], tensors[first]


def _layer_index(name: str) -> int:
    prefix = "vision_tower.encoder.layers."
    return int(name[len(prefix) :].split(".", 1)[0]) if name.startswith(prefix) else -1


def _required(fields: dict[str, Any], key: str, path: Path) -> Any:
    if key not in fields:
        raise ModelFormatError(f"{path} lacks the metadata key {key!r}")
    return fields[key]
