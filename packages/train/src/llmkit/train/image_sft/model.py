"""A vision-language model (SmolVLM / Idefics3, LLaVA) in training: loading, the forward pass with image
embeddings over the image tokens, and saving a directory that `load_vision_language` and `llmkit serve` read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.models.vision import LlavaModel
from llmkit.core.models.vision.decoder import ImageTokenDecoder
from llmkit.core.models.vision.llava_loader import LlavaLoader
from llmkit.core.models.vision.loader import Idefics3Loader
from llmkit.core.models.vision.pretrained import VisionLanguagePretrained, load_vision_language

from ..data.packing import TokenBatch
from ..errors import DataError
from ..modeling.export import replace_directory

WEIGHT_FILES = (".safetensors", ".safetensors.index.json", ".bin", ".gguf")


def is_vision_language(model: str | os.PathLike[str]) -> bool:
    """Whether `model` is an Idefics3 / SmolVLM or LLaVA directory (config.json model_type says so)."""
    path = Path(model).expanduser()
    return any(loader.can_load(path) for loader in (Idefics3Loader(), LlavaLoader()))


def load_for_training(
    model: str, *, dtype: str, device: torch.device, chat_template: str | None = None, quiet: bool = False
) -> VisionLanguagePretrained:
    """`load_vision_language` (quiet is accepted for `load_pretrained`'s signature: nothing is pulled)."""
    return load_vision_language(model, dtype=dtype, device=device, chat_template=chat_template)


def image_hidden_states(
    model: ImageTokenDecoder, batch: TokenBatch, pixel_values: torch.Tensor | None, pixel_mask: torch.Tensor | None
) -> torch.Tensor:
    """Final hidden states [B, T, H]: token embeddings with the tower + connector's output over the image tokens
    (tiles in row order, the order their token runs appear in the flattened batch)."""
    b, t = batch.input_ids.shape
    ids = batch.input_ids.reshape(-1)
    embeddings = model.text_model.embed_tokens(ids)
    image_positions = ids == model.config.image_token_id
    count = int(image_positions.sum())
    if pixel_values is not None:
        features = model.image_features(pixel_values, pixel_mask).reshape(-1, embeddings.shape[-1])
        if features.shape[0] != count:
            raise DataError(f"the batch holds {count} image tokens but its images make {features.shape[0]}")
        embeddings = embeddings.masked_scatter(image_positions[:, None], features.to(embeddings.dtype))
    elif count:
        raise DataError(f"the batch holds {count} image tokens but no images")
    attention = DenseCausalAttention(b, t, batch.valid, batch.segment_ids, device=ids.device)
    return model(embeddings, batch.positions.reshape(-1), attention).view(b, t, -1)


def vision_tower(model: ImageTokenDecoder) -> torch.nn.Module:
    return model.vision_tower if isinstance(model, LlavaModel) else model.vision_model


def hf_tensors(model: ImageTokenDecoder) -> dict[str, torch.Tensor]:
    """Parameters under the names transformers saves (and core's loaders read): Idefics3 keeps the decoder in
    `model.text_model.`, LLaVA in `model.language_model.`; the LM head is `lm_head.weight`."""
    text_prefix = "model.language_model." if isinstance(model, LlavaModel) else "model.text_model."
    tensors = {}
    for name, param in model.named_parameters():
        if name == "text_model.lm_head.weight":
            key = "lm_head.weight"
        elif name.startswith("text_model."):
            key = text_prefix + name.removeprefix("text_model.")
        else:
            key = f"model.{name}"
        tensors[key] = param.detach().to("cpu").contiguous()
    return tensors


def save_vision_language(source: Path, model: ImageTokenDecoder, directory: Path) -> Path:
    """The source directory's config, tokenizer, processor and chat template files with the trained weights."""
    staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        if file.is_file() and not file.name.endswith(WEIGHT_FILES):
            shutil.copy2(file, staging / file.name)
    config = json.loads((staging / "config.json").read_text())
    config["torch_dtype"] = str(model.dtype).removeprefix("torch.")
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    save_file(hf_tensors(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
    replace_directory(staging, directory)
    return directory
