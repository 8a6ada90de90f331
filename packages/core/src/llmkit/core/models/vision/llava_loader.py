"""HF directories of LLaVA models (model_type "llava"): config.json, safetensors, preprocessor/processor config,
chat template. Registered as the model loader "llava"; its `Checkpoint` has the same shape as the "idefics3"
loader's (language-model tensors under `LlamaModel`'s names, the vision side in `metadata`)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from ...errors import ModelFormatError
from ..checkpoint import Checkpoint, expected_tensor_names
from ..hf_loader import _read_json, _weight_files
from .llava_config import LlavaConfig
from .loader import vision_checkpoint

# Tensors a LLaVA checkpoint may hold that no part of the model uses.
_UNUSED = ("rotary_emb.inv_freq", "embeddings.position_ids")


def llava_tensor_name(key: str) -> tuple[str, str] | None:
    """("text" | "vision", our name) for a LLaVA checkpoint key in either layout transformers writes
    (`language_model.model.*` / `vision_tower.vision_model.*` of the Hub's llava-hf checkpoints, or
    `model.language_model.*` / `model.vision_tower.*`); None for a key no part of LLaVA knows."""
    name = key.removeprefix("model.") if key.startswith("model.") else key
    if name in ("lm_head.weight", "language_model.lm_head.weight"):
        return "text", "lm_head.weight"
    if name.startswith("language_model."):
        return "text", name.removeprefix("language_model.").removeprefix("model.")
    if name.startswith("vision_tower."):
        inner = name.removeprefix("vision_tower.").removeprefix("vision_model.")
        return "vision", f"vision_tower.{inner}"
    if name.startswith("multi_modal_projector."):
        return "vision", name
    return None


class LlavaLoader:
    """Loads a LLaVA directory (a CLIP or SigLIP tower, an MLP projector, a Llama language model)."""

    def can_load(self, path: Path) -> bool:
        config = path / "config.json"
        if not (path.is_dir() and config.is_file()):
            return False
        try:
            return json.loads(config.read_text()).get("model_type") == "llava"
        except (OSError, json.JSONDecodeError):
            return False

    def load(self, path: Path, *, keep_stored: bool = False) -> Checkpoint:
        raw = _read_json(path / "config.json")
        config = LlavaConfig.from_hf_dict(raw)
        if "image_seq_length" in raw and int(raw["image_seq_length"]) != config.image_seq_len:
            raise ModelFormatError(
                f"config.json says {raw['image_seq_length']} image tokens per image; the tower and select strategy "
                f"make {config.image_seq_len}"
            )
        text_tensors, vision_tensors = _read_tensors(path, config, keep_stored)
        return vision_checkpoint(path, config, text_tensors, vision_tensors)


def _read_tensors(path: Path, config: LlavaConfig, keep_stored: bool) -> tuple[dict, dict]:
    text, vision = {}, {}
    for file in _weight_files(path):
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    placed = llava_tensor_name(key)
                    if placed is None:
                        if key.endswith(_UNUSED):
                            continue
                        raise ModelFormatError(f"{file} holds a tensor {key!r} no part of a LLaVA model uses")
                    part, name = placed
                    if part == "vision":
                        if name.endswith(_UNUSED) or name.startswith("vision_tower.head."):
                            continue  # SigLIP's pooling head: LLaVA reads hidden states, never the pooled output
                        tensor = f.get_tensor(key)  # linears as stored (bf16/fp16) when keep_stored
                        vision[name] = tensor if keep_stored and tensor.dim() == 2 else tensor.float()
                    elif not (name == "lm_head.weight" and config.text.tie_word_embeddings):
                        tensor = f.get_tensor(key)
                        text[name] = tensor if keep_stored and tensor.dim() == 2 else tensor.float()
        except ModelFormatError:
            raise
        except Exception as err:
            raise ModelFormatError(f"cannot read {file}: {err}") from None
    missing = [name for name in expected_tensor_names(config.text) if name not in text]
    if missing:
        raise ModelFormatError(f"{path} lacks the language-model tensor {missing[0]!r}")
    if not any(name.startswith("vision_tower.") for name in vision):
        raise ModelFormatError(f"{path} holds no vision tower tensors (vision_tower.*)")
    return text, vision
