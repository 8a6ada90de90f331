"""What each document strategy costs in prompt tokens, before anything runs: text parts through the tokenizer,
page images through the model's image processor (its tiles' image tokens and tags)."""

from __future__ import annotations

import os
from collections.abc import Callable

from PIL import Image

from .pdf import STRATEGIES, Document, DocumentLimits, document_content_parts, read_pdf

ImageTokenCounter = Callable[[Image.Image], int]  # e.g. partial(vlm.num_image_tokens, detail="low")


def document_tokens(document: Document, count_text: Callable[[str], int], count_image: ImageTokenCounter) -> int:
    """Prompt tokens of the document's content parts: each text part's tokens plus each page image's."""
    parts, images = document_content_parts(document)
    text = sum(count_text(part["text"]) for part in parts if part["type"] == "text")
    return text + sum(count_image(image) for image in images)


def strategy_token_counts(
    source: bytes | str | os.PathLike[str],
    count_text: Callable[[str], int],
    count_image: ImageTokenCounter | None,
    limits: DocumentLimits = DocumentLimits(),
) -> dict[str, int | None]:
    """Tokens of each strategy for one PDF (read once); `pages` and `both` are None without `count_image`
    (a text-only model cannot take pages)."""
    both = read_pdf(source, "both" if count_image is not None else "text", limits)
    text_only = Document(both.name, "text", both.page_count, [], both.texts)
    counts: dict[str, int | None] = dict.fromkeys(STRATEGIES)
    counts["text"] = document_tokens(text_only, count_text, _no_images)
    if count_image is not None:
        pages_only = Document(both.name, "pages", both.page_count, both.pages, [])
        counts["pages"] = document_tokens(pages_only, count_text, count_image)
        counts["both"] = document_tokens(both, count_text, count_image)
    return counts


def _no_images(image: Image.Image) -> int:
    raise AssertionError("a text-only document has no page images")
