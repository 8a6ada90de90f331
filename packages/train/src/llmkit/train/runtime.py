"""What every method starts from: the process group, the seeded policy (with LoRA when asked), the
frozen reference, the output directory and the record encoder."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml

from llmkit.core.models.llama import LlamaModel
from llmkit.core.models.pretrained import Pretrained, load_pretrained

from .config import TrainConfig, config_to_dict
from .data.encoding import RecordEncoder
from .distributed import DistributedContext, init_distributed, seed_everything
from .errors import ConfigError
from .image_sft.model import is_vision_language, load_for_training
from .modeling.forward import enable_gradient_checkpointing
from .modeling.lora import adapters_disabled, apply_lora


def _freeze(model: LlamaModel) -> LlamaModel:
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


@dataclasses.dataclass
class Runtime:
    config: TrainConfig
    context: DistributedContext
    pretrained: Pretrained
    output_dir: Path
    reference: LlamaModel | None = None  # None with LoRA: the reference is the policy with adapters off

    @property
    def policy(self) -> LlamaModel:
        return self.pretrained.model

    @property
    def device(self) -> torch.device:
        return self.context.device

    @property
    def uses_lora(self) -> bool:
        return self.config.lora_rank > 0

    def encoder(self, add_eos: bool = True) -> RecordEncoder:
        return RecordEncoder(self.pretrained.tokenizer, self.pretrained.chat_template, add_eos)

    @property
    def pad_id(self) -> int:
        tokenizer = self.pretrained.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_ids[0]

    @contextlib.contextmanager
    def reference_model(self) -> Iterator[LlamaModel]:
        """The frozen reference: its own copy, or (under LoRA) the policy with adapters disabled."""
        if self.reference is not None:
            yield self.reference
            return
        with adapters_disabled(self.policy):
            yield self.policy


def freeze_lower_layers(model: LlamaModel, top: int) -> None:
    """Freeze the embedding and every decoder layer below the last `top`: the backward pass stops there."""
    if top > len(model.layers):
        raise ConfigError(f"train_top_layers={top} but the model has {len(model.layers)} layers")
    model.embed_tokens.requires_grad_(False)
    for layer in model.layers[: len(model.layers) - top]:
        layer.requires_grad_(False)


def load_model(config: TrainConfig, context: DistributedContext, name: str | None = None) -> Pretrained:
    """Load on the main process first (it may pull the model), then on the others. A vision-language
    directory loads as one (image SFT)."""
    load = load_for_training if is_vision_language(name or config.model) else load_pretrained
    pretrained = None
    if context.is_main:
        pretrained = load(
            name or config.model, dtype=config.dtype, device=context.device, chat_template=config.chat_template
        )
    context.barrier()
    if pretrained is None:
        pretrained = load(
            name or config.model,
            dtype=config.dtype,
            device=context.device,
            chat_template=config.chat_template,
            quiet=True,
        )
    return pretrained


def build_runtime(config: TrainConfig, needs_reference: bool, reference_name: str | None = None) -> Runtime:
    """Seed, load the policy (and a reference when the method needs one), then add LoRA and checkpointing."""
    context = init_distributed(config.device, config.distributed)
    seed_everything(config.seed)
    output_dir = Path(config.output_dir)
    if context.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    pretrained = load_model(config, context)
    reference = None
    if needs_reference and (reference_name or not config.lora_rank):
        source = (
            load_model(config, context, reference_name).model if reference_name else copy.deepcopy(pretrained.model)
        )
        reference = _freeze(source)
    policy = pretrained.model
    if config.lora_rank:
        apply_lora(policy, config.lora_rank, config.lora_alpha, config.lora_dropout, config.lora_targets)
    else:
        for param in policy.parameters():
            param.requires_grad_(True)
    if config.train_top_layers:
        freeze_lower_layers(policy, config.train_top_layers)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(policy)
    policy.train()
    return Runtime(config, context, pretrained, output_dir, reference)
