"""What the engine loads: a text model (`Pretrained`), or a vision-language model's decoder plus its
`EngineVision` when the path is an Idefics3 / SmolVLM or LLaVA directory (a GGUF + mmproj pair is not taken
by the engine yet)."""

from __future__ import annotations

from pathlib import Path

from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.pretrained import Pretrained, load_pretrained
from llmkit.core.models.vision.llava_loader import LlavaLoader
from llmkit.core.models.vision.loader import Idefics3Loader
from llmkit.core.models.vision.pretrained import VisionLanguagePretrained, load_vision_language

from .engine_vision import EngineVision


def load_engine_model(model, config, **options) -> tuple[Pretrained, EngineVision | None]:
    """`model` is a catalog name, a path, a `Pretrained` or a `VisionLanguagePretrained`; `options` are
    `load_pretrained`'s (the language model of a vision-language model loads dense in `dtype`, or as stored /
    quantized with `weights="as-stored"`, `quantize`, `activations`). Features the vision path does not support
    yet are refused here, before anything runs."""
    if isinstance(model, Pretrained):
        return model, None
    if not isinstance(model, VisionLanguagePretrained):
        path = Path(str(model)).expanduser()
        if not any(loader.can_load(path) for loader in (Idefics3Loader(), LlavaLoader())):
            return load_pretrained(model, **options), None
        model = load_vision_language(
            path,
            dtype=options.get("dtype") or "float32",
            device=options["device"],
            chat_template=options.get("chat_template"),
            weights=options.get("weights"),
            quantize=options.get("quantize"),
            activations=options.get("activations"),
        )
    for name, value, default in (
        ("speculative", config.speculative, None),
        ("tensor_parallel_size", config.tensor_parallel_size, 1),
    ):
        if value != default:
            raise InvalidParameterError(f"{name} is not supported with a vision-language model yet")
    text = Pretrained(model.model.text_model, model.tokenizer, model.chat_template, model.path, "hf")
    return text, EngineVision(model)
