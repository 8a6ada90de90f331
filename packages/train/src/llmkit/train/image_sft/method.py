"""Image SFT: `llmkit train sft` on a vision-language model directory. The loss is text SFT's (assistant tokens,
averaged over the global batch); the tower and connector run inside the forward pass, so the connector and the
language model train, and the tower too unless `freeze_vision_tower`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import SFTConfig
from ..data.packing import TokenBatch, collate
from ..data.truncation import Truncation
from ..errors import ConfigError
from ..methods.base import LossOutput, MicroBatch, TrainingModule
from ..methods.supervised import SupervisedMethod
from ..modeling.forward import target_logprobs
from .encoding import ImageRecordEncoder, ImageSequence, check_truncated
from .model import image_hidden_states, save_vision_language, vision_tower
from .records import load_image_records

if TYPE_CHECKING:
    from ..runtime import Runtime

UNSUPPORTED = {
    "lora_rank": "LoRA",
    "packing": "packing",
    "train_top_layers": "train_top_layers",
    "gradient_checkpointing": "gradient checkpointing",
}


def check_image_sft_config(config: SFTConfig) -> None:
    """Options image SFT does not take yet, refused before anything loads."""
    for key, what in UNSUPPORTED.items():
        if getattr(config, key):
            raise ConfigError(f"{what} is not supported for vision-language models yet (unset {key})")
    if config.distributed == "fsdp":
        raise ConfigError("FSDP is not supported for vision-language models yet; use distributed: ddp")
    if config.loss_on not in ("auto", "assistant"):
        raise ConfigError(f"image SFT learns assistant turns; loss_on={config.loss_on!r} is not supported")


@dataclasses.dataclass
class ImageSFTBatch(MicroBatch):
    tokens_batch: TokenBatch
    pixel_values: torch.Tensor | None
    pixel_mask: torch.Tensor | None


class ImageSFTModule(TrainingModule):
    def forward(self, batch: ImageSFTBatch) -> LossOutput:
        tokens = batch.tokens_batch
        hidden = image_hidden_states(self.policy, tokens, batch.pixel_values, batch.pixel_mask)
        return LossOutput(-target_logprobs(self.policy, hidden, tokens).sum())


class ImageSFTMethod(SupervisedMethod):
    """SFT over chat records with image parts (see `image_sft.records`), for SmolVLM / Idefics3 and LLaVA."""

    name = "sft"
    config_class = SFTConfig
    config: SFTConfig

    def __init__(self, config: SFTConfig, runtime: Runtime):
        check_image_sft_config(config)
        self.image_encoder = ImageRecordEncoder(runtime.pretrained)
        if config.freeze_vision_tower:
            vision_tower(runtime.policy).requires_grad_(False)
        super().__init__(config, runtime)

    def load_records(self, path: str) -> list[tuple[str, Any]]:
        return load_image_records(path)

    def encode(self, records: list[tuple[str, Any]], truncation: Truncation) -> list[ImageSequence]:
        sequences = []
        image_token = self.image_encoder.image_token_id
        for where, record in records:
            sequence = self.image_encoder.encode(record, where)
            kept = truncation.sequence(sequence.tokens, where)
            if kept is not None:
                sequences.append(check_truncated(sequence, kept, image_token, where))
        return sequences

    def build_module(self) -> ImageSFTModule:
        self.module = ImageSFTModule(self.runtime.policy)
        return self.module

    def micro_batch(self, items: Sequence[ImageSequence]) -> ImageSFTBatch:
        device = self.runtime.device
        tokens = collate([[item.tokens] for item in items], self.runtime.pad_id).to(device)
        processed = [image for item in items for image in self.image_encoder.process_images(item.images)]
        pixel_values = pixel_mask = None
        if processed:
            pixel_values = torch.from_numpy(np.concatenate([p.pixel_values for p in processed])).to(device)
            pixel_mask = torch.from_numpy(np.concatenate([p.pixel_mask for p in processed])).to(device)
        return ImageSFTBatch(tokens.num_targets, tokens.num_tokens, tokens, pixel_values, pixel_mask)

    def save_final(self, directory: Path, full_state: dict[str, torch.Tensor] | None = None) -> None:
        save_vision_language(Path(self.runtime.pretrained.path), self.runtime.policy, directory / "model")
