"""Image and page items in a `ContextWindow`: each carries its real prompt-token cost from the model's image
processor (`metadata["image_tokens"]`, counted once when added), so budgets, eviction and `llmkit context
inspect` account for it like text. Items live in the history zone as user messages whose content is an
`{"type": "image"}` part (plus a caption); the pixels stay in `window.images` (a session file keeps the counts,
not the pixels)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from llmkit.core.documents import DocumentLimits, read_pdf

from .errors import ContextError
from .items import ContextItem

if TYPE_CHECKING:
    from .window import ContextWindow

IMAGE_KINDS = ("image", "page")


def add_image(
    window: ContextWindow,
    image: Any,
    source: str,
    *,
    detail: str = "auto",
    caption: str = "",
    pinned: bool = False,
    priority: int = 0,
) -> ContextItem:
    """A user message holding one image (bytes, a path or a PIL image) and an optional caption; opens a turn."""
    item = _image_item(window, image, source, "image", detail, caption, window.turn + 1, pinned, priority)
    window._append(item)
    return item


def add_pdf(
    window: ContextWindow,
    pdf: bytes | str | os.PathLike[str],
    *,
    source: str | None = None,
    strategy: str = "pages",
    detail: str = "auto",
    limits: DocumentLimits = DocumentLimits(),
    priority: int = 0,
) -> list[ContextItem]:
    """A PDF in one user turn: one `page` item per page (its image, and its text as the caption under `both`);
    under `text`, one message item per page. Each page is evicted on its own when the budget is short."""
    document = read_pdf(pdf, strategy, limits, name=source)
    turn = window.turn + 1
    items = []
    for index in range(document.page_count):
        label = f"{document.name} p.{index + 1}"
        text = f"[{document.name}, page {index + 1}]\n{document.texts[index].strip()}\n" if document.texts else ""
        if document.pages:
            item = _image_item(window, document.pages[index], label, "page", detail, text, turn, False, priority)
        else:
            item = ContextItem(text, kind="message", role="user", source=label, priority=priority, turn=turn)
        item.metadata["page"] = index + 1
        items.append(item)
    window.history += items
    window.turn = turn
    return items


def image_tokens(item: ContextItem) -> int:
    """The prompt tokens of an item's image (0 for a text item)."""
    return int(item.metadata.get("image_tokens", 0)) if item.kind in IMAGE_KINDS else 0


def image_message(item: ContextItem, text: str) -> dict[str, Any]:
    """An image item as a chat message: its image part, then its caption."""
    parts: list[dict[str, Any]] = [{"type": "image"}]
    if text:
        parts.append({"type": "text", "text": text})
    return {"role": item.role, "content": parts}


def _image_item(
    window: ContextWindow,
    image: Any,
    source: str,
    kind: str,
    detail: str,
    caption: str,
    turn: int,
    pinned: bool,
    priority: int,
) -> ContextItem:
    counter = window.counter
    if counter.image_tokens is None:
        raise ContextError(
            "this window's token counter cannot count images: build it with TokenCounter.for_vision_language(vlm)"
        )
    tokens = counter.count_image(image, detail)
    item = ContextItem(caption, kind=kind, role="user", source=source, pinned=pinned, priority=priority, turn=turn)
    item.metadata.update(image_tokens=tokens, detail=detail)
    window.images[item.item_id] = image
    return item
