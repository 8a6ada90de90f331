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
    `load_pretrained`'s. Features the vision path does not support yet are refused here, before anything runs."""
    if isinstance(model, Pretrained):
        return model, None
    if not isinstance(model, VisionLanguagePretrained):
        path = Path(str(model)).expanduser()
        if not any(loader.can_load(path) for loader in (Idefics3Loader(), LlavaLoader())):
            return load_pretrained(model, **options), None
        unsupported = [name for name in ("weights", "quantize", "activations") if options.get(name) is not None]
        if unsupported:
            raise InvalidParameterError(
                f"{', '.join(unsupported)} is not supported for vision-language models yet (they load dense; "
                "choose dtype instead)"
            )
        model = load_vision_language(
            path,
            dtype=options.get("dtype") or "float32",
            device=options["device"],
            chat_template=options.get("chat_template"),
        )
    for name, value, default in (
        ("speculative", config.speculative, None),
        ("tensor_parallel_size", config.tensor_parallel_size, 1),
    ):
        if value != default:
            raise InvalidParameterError(f"{name} is not supported with a vision-language model yet")
    text = Pretrained(model.model.text_model, model.tokenizer, model.chat_template, model.path, "hf")
    return text, EngineVision(model)
