"""Documents in chat requests: OpenAI `file` content parts holding a PDF -> page images and/or text parts.

A part is `{"type": "file", "file": {"file_data": "data:application/pdf;base64,...", "filename": "a.pdf"}}`,
with two llmkit fields: `strategy` (`pages`, `text` or `both`; default `both` on a vision-language model,
`text` on a text model) and `detail` for the rendered pages (as an image part's). Each part is replaced in the
body by its content parts (core's `document_content_parts`): `{"type": "image"}` per page image, where the
chat template puts image tokens, and a text part per page text. Page images join the request's other images
in message order (`merge_page_images`). A broken, encrypted or oversized PDF is a 400 for its request only."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from llmkit.core.documents import STRATEGIES, DocumentInputError, DocumentLimits, document_content_parts, read_pdf
from llmkit.core.images import DETAILS

from .errors import APIError

if TYPE_CHECKING:
    from PIL import Image

    from .state import Server

DOCUMENT_LIMITS = DocumentLimits()  # pages, encoded bytes and rendered page size of one document
_PAGE_KEY = "llmkit_page"  # marks a page's image placeholder until merge_page_images puts its image in order
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?:;[^;,]*)*?;base64,(?P<data>.*)", re.DOTALL)
_PDF_TYPES = ("", "application/pdf", "application/x-pdf")


async def take_document_parts(server: Server, body: dict[str, Any]) -> list[tuple[Image.Image, str]]:
    """Read every `file` part of the body (off the event loop) and splice its content parts in its place; the
    page images with their detail, in the order of their marked placeholders."""
    pages: list[tuple[Image.Image, str]] = []
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or not any(_is_file_part(p) for p in content):
            continue
        spliced: list[Any] = []
        for j, part in enumerate(content):
            if not _is_file_part(part):
                spliced.append(part)
                continue
            where = f"messages.{i}.content.{j}"
            data, filename, strategy, detail = _file_fields(server, part, where)
            try:
                document = await asyncio.to_thread(read_pdf, data, strategy, DOCUMENT_LIMITS, name=filename)
            except DocumentInputError as err:
                raise APIError(400, f"{where}: {err}", param=f"{where}.file", code="invalid_file") from None
            parts, images = document_content_parts(document)
            for new in parts:
                if new["type"] == "image":
                    new = {**new, _PAGE_KEY: len(pages)}
                    pages.append((images.pop(0), detail))
                spliced.append(new)
        content[:] = spliced
    return pages


def merge_page_images(
    body: dict[str, Any], pages: list[tuple[Image.Image, str]], images: list[tuple[Image.Image, str]]
) -> list[tuple[Image.Image, str]]:
    """All of the request's images in the order of the body's `{"type": "image"}` parts (pages where their
    marked placeholders are, `image_url` images at the others), the page marks removed."""
    if not pages:
        return images
    merged, remaining = [], iter(images)
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image":
                merged.append(pages[part.pop(_PAGE_KEY)] if _PAGE_KEY in part else next(remaining))
    return merged


def _is_file_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "file"


def _file_fields(server: Server, part: dict, where: str) -> tuple[bytes, str, str, str]:
    spec = part.get("file")
    if not isinstance(spec, dict):
        raise APIError(400, f"{where}: a file part needs an object 'file'", param=f"{where}.file", code="invalid_value")
    unknown = sorted(set(spec) - {"file_data", "filename", "file_id", "strategy", "detail"})
    if unknown:
        raise APIError(400, f"{where}.file: unknown field {unknown[0]!r}", param=f"{where}.file")
    if "file_id" in spec:
        raise APIError(
            400,
            f"{where}.file: file_id needs a Files API this server does not have; send file_data as a data: URL",
            param=f"{where}.file.file_id",
            code="unsupported_parameter",
        )
    filename = spec.get("filename") or "document.pdf"
    if not isinstance(filename, str):
        raise APIError(400, f"{where}.file.filename must be a string", param=f"{where}.file.filename")
    vision = server.engine.vision is not None and server.admission is None
    strategy = spec.get("strategy", "both" if vision else "text")
    if strategy not in STRATEGIES:
        raise APIError(
            400,
            f"{where}.file.strategy must be one of {', '.join(STRATEGIES)}, got {str(strategy)[:40]!r}",
            param=f"{where}.file.strategy",
            code="invalid_value",
        )
    if strategy != "text" and not vision:
        why = "it is a text model" if server.engine.vision is None else "this is a disaggregated worker"
        raise APIError(
            400,
            f"{where}: the strategy {strategy!r} sends pages as images, which {server.model_name!r} cannot take "
            f"({why}); use strategy 'text'",
            param=f"{where}.file.strategy",
            code="image_input_not_supported",
        )
    detail = spec.get("detail", "auto")
    if detail not in DETAILS:
        raise APIError(
            400,
            f"{where}.file.detail must be one of {', '.join(DETAILS)}, got {str(detail)[:40]!r}",
            param=f"{where}.file.detail",
            code="invalid_value",
        )
    return _decode_file_data(spec.get("file_data"), f"{where}.file.file_data"), filename, strategy, detail


def _decode_file_data(url: Any, where: str) -> bytes:
    match = _DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise APIError(400, f"{where}: must read data:application/pdf;base64,<data>", param=where, code="invalid_file")
    if match["mime"].lower() not in _PDF_TYPES:
        raise APIError(400, f"{where}: {match['mime'][:40]!r} is not a PDF type", param=where, code="invalid_file")
    if len(match["data"]) // 4 * 3 > DOCUMENT_LIMITS.max_bytes + 3:
        raise APIError(
            400, f"{where}: the file is over {DOCUMENT_LIMITS.max_bytes} bytes", param=where, code="file_too_large"
        )
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError) as err:
        raise APIError(
            400, f"{where}: the file is not valid base64 ({err})", param=where, code="invalid_base64"
        ) from None
