"""Chat SFT records whose messages carry images: the parts the model's chat template renders as `<image>`.

{"messages": [{"role": "user", "content": [{"type": "image", "path": "shapes/0.png"},
                                           {"type": "text", "text": "What is this?"}]},
              {"role": "assistant", "content": "a red circle"}]}

An image part is `{"type": "image", "path": FILE}` (relative to the data file) or OpenAI's
`{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`. Images sit in user or system turns;
assistant turns are text (they are what the model learns to write).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from pathlib import Path
from typing import Any

from ..data.records import read_jsonl
from ..errors import DataError

ImageSource = Path | bytes


@dataclasses.dataclass(frozen=True)
class ImageChatRecord:
    """Messages with image parts normalized to `{"type": "image"}` and the images in the order they appear."""

    messages: list[dict[str, Any]]
    images: tuple[ImageSource, ...]


def load_image_records(path: str | Path) -> list[tuple[str, ImageChatRecord]]:
    """Every record of a JSONL file, as (location "file:line", record)."""
    base = Path(path).parent
    return [(where, image_chat_record(obj, where, base)) for where, obj in read_jsonl(path)]


def image_chat_record(obj: dict[str, Any], where: str, base: Path) -> ImageChatRecord:
    extra = sorted(set(obj) - {"messages", "id"})
    if extra or "messages" not in obj:
        raise DataError(f"{where}: an image SFT record holds 'messages' (and optionally 'id'), got {sorted(obj)}")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of messages")
    normalized, images = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise DataError(f"{where}: messages[{index}] must be an object with 'role' and 'content'")
        content = message.get("content")
        if isinstance(content, list):
            if message["role"] == "assistant":
                raise DataError(f"{where}: messages[{index}] (assistant) must be text; images go in user turns")
            parts = []
            for part in content:
                image = _image_source(part, where, index, base)
                if image is None:
                    parts.append(_text_part(part, where, index))
                else:
                    images.append(image)
                    parts.append({"type": "image"})
            content = parts
        elif not isinstance(content, str) or (message["role"] == "assistant" and not content):
            raise DataError(f"{where}: messages[{index}] ({message['role']}) has no text content")
        normalized.append({**message, "content": content})
    if not any(m["role"] == "assistant" for m in normalized):
        raise DataError(f"{where}: the conversation has no assistant message to learn from")
    return ImageChatRecord(normalized, tuple(images))


def _text_part(part: Any, where: str, index: int) -> dict[str, Any]:
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    raise DataError(f"{where}: messages[{index}] has a content part that is neither text nor an image: {part!r}")


def _image_source(part: Any, where: str, index: int, base: Path) -> ImageSource | None:
    """The image of an image part (None for any other part)."""
    if not isinstance(part, dict):
        return None
    if part.get("type") == "image":
        if not isinstance(part.get("path"), str):
            raise DataError(f"{where}: messages[{index}] has an image part without a 'path'")
        file = base / part["path"]
        if not file.is_file():
            raise DataError(f"{where}: image file {file} does not exist")
        return file
    if part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
        if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
            raise DataError(f"{where}: messages[{index}] image_url must be a base64 data URI (data:image/...;base64,)")
        try:
            return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        except binascii.Error as err:
            raise DataError(f"{where}: messages[{index}] image_url holds broken base64 ({err})") from None
    return None
