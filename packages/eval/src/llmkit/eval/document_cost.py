"""`llmkit cost --file PDF`: prompt tokens of each document strategy before anything runs — pages as the model's
image tokens (its image processor's tiles at `--file-detail`), text as its tokenizer's tokens, both as the sum.

A text model gets only the `text` count (it cannot take pages). Only the tokenizer and image processor are used;
nothing is generated."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from llmkit.core.documents import DocumentLimits, strategy_token_counts


def document_strategy_tokens(model: str, files: list[str], detail: str, max_pages: int) -> dict[str, dict]:
    """{file: {"pages": n | None, "text": n, "both": n | None}} for `model` (catalog name, file or directory)."""
    from llmkit.core.models import store
    from llmkit.core.models.pretrained import find_loader
    from llmkit.core.models.vision.llava_loader import LlavaLoader
    from llmkit.core.models.vision.loader import Idefics3Loader
    from llmkit.core.models.vision.pretrained import load_vision_language

    path = store.resolve(model)
    if Idefics3Loader().can_load(path) or LlavaLoader().can_load(path):
        vlm = load_vision_language(path)
        tokenizer, count_image = vlm.tokenizer, partial(vlm.num_image_tokens, detail=detail)
    else:
        tokenizer, count_image = find_loader(path)[1].load(path).tokenizer, None
    limits = DocumentLimits(max_pages=max_pages)
    return {
        str(file): strategy_token_counts(Path(file), lambda text: len(tokenizer.encode(text)), count_image, limits)
        for file in files
    }


def document_input_costs(counts: dict[str, dict], prices: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """USD of each strategy's prompt tokens, per price-table model (`cost.Price`s): {model: {file: {strategy: $ | None}}}."""
    return {
        name: {
            file: {s: None if n is None else n * price.input / 1e6 for s, n in strategies.items()}
            for file, strategies in counts.items()
        }
        for name, price in prices.items()
    }
