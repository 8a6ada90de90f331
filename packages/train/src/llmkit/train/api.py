"""Training from Python: `train("sft", SFTConfig(...))` or `train("grpo", config_file="grpo.yaml", max_steps=20)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import CONFIG_CLASSES, TrainConfig, load_config
from .errors import ConfigError
from .image_sft.method import ImageSFTMethod, check_image_sft_config
from .image_sft.model import is_vision_language
from .loop import Trainer, TrainResult
from .methods import METHODS


def train(
    method: str, config: TrainConfig | None = None, *, config_file: str | Path | None = None, **options: Any
) -> TrainResult:
    """Run one method end to end; options given as keywords override the config file."""
    if method not in METHODS:
        raise ConfigError(f"unknown training method {method!r}; choose one of {', '.join(METHODS)}")
    if config is None:
        config = load_config(CONFIG_CLASSES[method], config_file, options)
    elif config_file is not None or options:
        raise ConfigError("pass either a config object, or a config file and/or options")
    if config.method != method:
        raise ConfigError(f"a {type(config).__name__} is for {config.method}, not {method}")
    method_class = METHODS[method]
    if method == "sft" and is_vision_language(config.model):
        check_image_sft_config(config)
        method_class = ImageSFTMethod
    return Trainer(method_class, config).train()
