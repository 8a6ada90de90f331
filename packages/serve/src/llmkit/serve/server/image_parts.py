"""Images in chat requests: OpenAI `image_url` content parts -> decoded images, each limit a clear 4xx.

A part is `{"type": "image_url", "image_url": {"url": "data:image/png;base64,...", "detail": "auto"}}`.
`data:` URLs are decoded here; `http(s)` URLs are fetched only from hosts the operator allowed
(`llmkit serve --image-url-allow HOST`), without following redirects, under a byte limit and a timeout.
Every image is decoded (header first: pixel bombs are refused before any pixel is) before the prompt is
built, so a bad image never reaches the engine. Each part is replaced by `{"type": "image"}`, where the
chat template of a vision-language model places its image tokens."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from llmkit.core.errors import ChatTemplateError, InvalidParameterError, ModelFormatError
from llmkit.core.images import DETAILS, ImageInputError, open_image

from ..vision import ImagePrompt
from .errors import APIError
from .image_options import ImageLimits

if TYPE_CHECKING:
    from PIL import Image

    from .state import Server

_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class ImagePart:
    where: str  # the part's parameter path, for errors: messages.0.content.1
    url: str
    detail: str


def take_image_parts(body: dict[str, Any], limits: ImageLimits) -> list[ImagePart]:
    """The request's image parts in order, each replaced in `body` by `{"type": "image"}` (a body of another
    shape is left to the request's validation)."""
    parts: list[ImagePart] = []
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "image_url":
                parts.append(_image_part(part, f"messages.{i}.content.{j}"))
                content[j] = {"type": "image"}
    if len(parts) > limits.max_images:
        raise APIError(
            400,
            f"the request holds {len(parts)} images; this server takes at most {limits.max_images} per request",
            param="messages",
            code="too_many_images",
        )
    return parts


async def load_images(server: Server, parts: list[ImagePart]) -> list[tuple[Image.Image, str]]:
    """Each part's image (decoded, upright RGB) and detail; the first bad one raises its 4xx."""
    if parts and server.engine.vision is None:
        raise APIError(
            400,
            f"the model {server.model_name!r} does not accept images (it is a text model); send text content only",
            param=parts[0].where,
            code="image_input_not_supported",
        )
    if parts and server.admission is not None:
        raise APIError(
            400,
            "images are not supported with disaggregated prefill/decode yet; send them to a standalone server",
            param=parts[0].where,
            code="image_input_not_supported",
        )
    limits = server.image_limits
    loaded = []
    for part in parts:
        data = await _image_bytes(part, limits)
        try:
            image = await asyncio.to_thread(open_image, data, max_pixels=limits.max_pixels)
        except ImageInputError as err:
            raise APIError(400, f"{part.where}: {err}", param=part.where, code="invalid_image") from None
        loaded.append((image, part.detail))
    return loaded


def image_chat_prompt(server: Server, messages: list[dict], images, req, tools) -> ImagePrompt:
    """The chat's prompt with its images: the template places `<image>`, the vision side expands each."""
    template = server.engine.pretrained.chat_template
    if template is None:
        raise APIError(400, "the model has no chat template", param="messages")
    try:
        text = template.render(
            messages,
            tools=tools,
            add_generation_prompt=req.add_generation_prompt,
            continue_final_message=req.continue_final_message,
            extra_variables=req.chat_template_kwargs,
            image_parts=True,
        )
        return server.engine.vision.prompt(text, images)
    except (ChatTemplateError, InvalidParameterError, ModelFormatError) as err:
        raise APIError(400, str(err), param="messages") from None


def _image_part(part: dict, where: str) -> ImagePart:
    spec = part.get("image_url")
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        raise APIError(
            400,
            f"{where}: an image_url part needs an object {{'url': 'data:image/...;base64,...'}}",
            param=f"{where}.image_url",
            code="invalid_value",
        )
    unknown = sorted(set(spec) - {"url", "detail"})
    if unknown:
        raise APIError(400, f"{where}.image_url: unknown field {unknown[0]!r}", param=f"{where}.image_url")
    detail = spec.get("detail", "auto")
    if detail not in DETAILS:
        raise APIError(
            400,
            f"{where}.image_url.detail must be one of {', '.join(DETAILS)}, got {str(detail)[:40]!r}",
            param=f"{where}.image_url.detail",
            code="invalid_value",
        )
    return ImagePart(where, spec["url"], detail)


async def _image_bytes(part: ImagePart, limits: ImageLimits) -> bytes:
    url, where = part.url, f"{part.where}.image_url.url"
    if url.startswith("data:"):
        return _decode_data_url(url, where, limits.max_image_bytes)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise APIError(
            400,
            f"{where}: an image URL must be a data: URL with base64 content (or http(s) from an allowed host)",
            param=where,
            code="invalid_image_url",
        )
    host = (urlsplit(url).hostname or "").lower()
    if host not in {h.lower() for h in limits.url_allow}:
        allowed = ", ".join(limits.url_allow) if limits.url_allow else "none (send images as data: URLs)"
        raise APIError(
            400,
            f"{where}: this server does not fetch images from {host or 'that URL'!r}; allowed hosts: {allowed}",
            param=where,
            code="image_url_not_allowed",
        )
    return await _fetch(url, where, limits)


def _decode_data_url(url: str, where: str, max_bytes: int) -> bytes:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise APIError(
            400, f"{where}: a data URL must read data:image/<type>;base64,<data>", param=where, code="invalid_image_url"
        )
    if match["mime"] and not match["mime"].lower().startswith("image/"):
        raise APIError(400, f"{where}: {match['mime'][:40]!r} is not an image type", param=where, code="invalid_image")
    encoded = match["data"]
    if len(encoded) // 4 * 3 > max_bytes + 3:
        raise _too_large(where, f"about {len(encoded) // 4 * 3}", max_bytes)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise APIError(
            400, f"{where}: the image is not valid base64 ({err})", param=where, code="invalid_base64"
        ) from None
    if len(data) > max_bytes:
        raise _too_large(where, str(len(data)), max_bytes)
    if not data:
        raise APIError(400, f"{where}: the image is empty", param=where, code="invalid_image")
    return data


async def _fetch(url: str, where: str, limits: ImageLimits) -> bytes:
    """GET an allowed URL: no redirects, at most `max_image_bytes`, within `fetch_timeout` seconds."""
    data = bytearray()
    try:
        async with (
            asyncio.timeout(limits.fetch_timeout),
            httpx.AsyncClient(follow_redirects=False) as client,
            client.stream("GET", url, timeout=limits.fetch_timeout) as response,
        ):
            if response.status_code != 200:
                raise APIError(
                    400,
                    f"{where}: fetching the image gave HTTP {response.status_code}",
                    param=where,
                    code="image_fetch_failed",
                )
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limits.max_image_bytes:
                    raise _too_large(where, f"over {limits.max_image_bytes}", limits.max_image_bytes)
    except TimeoutError:
        raise APIError(
            400,
            f"{where}: the image did not arrive within {limits.fetch_timeout:g} s",
            param=where,
            code="image_fetch_failed",
        ) from None
    except httpx.HTTPError as err:
        raise APIError(
            400, f"{where}: cannot fetch the image ({type(err).__name__})", param=where, code="image_fetch_failed"
        ) from None
    return bytes(data)


def _too_large(where: str, size: str, limit: int) -> APIError:
    return APIError(
        400, f"{where}: the image is {size} bytes; the limit is {limit} bytes", param=where, code="image_too_large"
    )
