"""HF directories of Idefics3 / SmolVLM: config.json, safetensors, preprocessor/processor config, chat template.

Registered as the model loader "idefics3". Its `Checkpoint` holds the language model's tensors under
`LlamaModel`'s names (so `load_pretrained` gets the text decoder alone) and, in `metadata`, everything the
vision side needs; `load_vision_language` builds the whole model from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ...errors import ModelFormatError
from ...tokenizer import Tokenizer
from ..checkpoint import Checkpoint, expected_tensor_names
from ..hf_loader import _chat_template, _read_json, _weight_files, _with_generation_eos
from .config import VISION_LANGUAGE_TYPES, Idefics3Config

_TEXT_PREFIX, _VISION_PREFIXES = "model.text_model.", ("model.vision_model.", "model.connector.")


class Idefics3Loader:
    """Loads an Idefics3 / SmolVLM directory (model_type "idefics3" or "smolvlm")."""

    def can_load(self, path: Path) -> bool:
        config = path / "config.json"
        if not (path.is_dir() and config.is_file()):
            return False
        try:
            return json.loads(config.read_text()).get("model_type") in VISION_LANGUAGE_TYPES
        except (OSError, json.JSONDecodeError):
            return False

    def load(self, path: Path, *, keep_stored: bool = False) -> Checkpoint:
        config = Idefics3Config.from_hf_dict(_read_json(path / "config.json"))
        text_tensors, vision_tensors = _read_tensors(path, config, keep_stored)
        return vision_checkpoint(path, config, text_tensors, vision_tensors)


def vision_checkpoint(path: Path, config: Any, text_tensors: dict, vision_tensors: dict) -> Checkpoint:
    """A vision-language directory's `Checkpoint` (the "idefics3" and "llava" loaders): the language model's
    tensors under `LlamaModel`'s names, the tokenizer and chat template, and in `metadata` the whole config
    (`config.text` is the decoder's), the vision tensors and the image processor's settings."""
    tokenizer_config = _optional_json(path / "tokenizer_config.json")
    if not (path / "tokenizer.json").is_file():
        raise ModelFormatError(f"{path} lacks tokenizer.json")
    tokenizer = _with_generation_eos(Tokenizer.from_file(path / "tokenizer.json", tokenizer_config), path)
    processor_config = _optional_json(path / "processor_config.json")
    return Checkpoint(
        config=config.text,
        tensors=text_tensors,
        tokenizer=tokenizer,
        chat_template=_vision_chat_template(path, tokenizer_config, processor_config),
        path=path,
        format="hf",
        metadata={
            "vision_language": config,
            "vision_tensors": vision_tensors,
            "image_processor": _image_processor_config(path, processor_config),
            "processor": processor_config,
        },
    )


def _read_tensors(path: Path, config: Idefics3Config, keep_stored: bool) -> tuple[dict, dict]:
    text, vision = {}, {}
    for file in _weight_files(path):
        try:
            with safe_open(file, framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    if key.startswith(_VISION_PREFIXES):
                        tensor = f.get_tensor(key)  # linears as stored (bf16/fp16) when keep_stored
                        vision[key.removeprefix("model.")] = (
                            tensor if keep_stored and tensor.dim() == 2 else tensor.float()
                        )
                    elif key.startswith(_TEXT_PREFIX) or key == "lm_head.weight":
                        if key == "lm_head.weight" and config.text.tie_word_embeddings:
                            continue
                        tensor = f.get_tensor(key)
                        text[key.removeprefix(_TEXT_PREFIX)] = (
                            tensor if keep_stored and tensor.dim() == 2 else tensor.float()
                        )
                    elif not key.endswith("rotary_emb.inv_freq"):
                        raise ModelFormatError(f"{file} holds a tensor {key!r} no part of a {config.model_type} uses")
        except ModelFormatError:
            raise
        except Exception as err:
            raise ModelFormatError(f"cannot read {file}: {err}") from None
    missing = [name for name in expected_tensor_names(config.text) if name not in text]
    if missing:
        raise ModelFormatError(f"{path} lacks the language-model tensor {missing[0]!r}")
    if not vision:
        raise ModelFormatError(f"{path} holds no vision tower tensors (model.vision_model.*)")
    return text, vision


def _image_processor_config(path: Path, processor_config: dict) -> dict[str, Any]:
    """preprocessor_config.json (the Hub's layout), else the `image_processor` of processor_config.json (what
    transformers 5 saves)."""
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.is_file():
        return _read_json(preprocessor)
    if isinstance(processor_config.get("image_processor"), dict):
        return processor_config["image_processor"]
    raise ModelFormatError(f"{path} lacks preprocessor_config.json (the image processor's settings)")


def _optional_json(file: Path) -> dict[str, Any]:
    return _read_json(file) if file.is_file() else {}


def _vision_chat_template(path: Path, tokenizer_config: dict, processor_config: dict) -> str | None:
    """The processor's template (chat_template.jinja / chat_template.json / processor_config) before the tokenizer's."""
    legacy = path / "chat_template.json"
    if not (path / "chat_template.jinja").is_file() and legacy.is_file():
        return _read_json(legacy).get("chat_template")
    if not (path / "chat_template.jinja").is_file() and processor_config.get("chat_template"):
        return processor_config["chat_template"]
    return _chat_template(path, tokenizer_config)
