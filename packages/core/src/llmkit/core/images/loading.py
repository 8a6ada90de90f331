"""Decode an image from bytes / a file / a PIL image into upright RGB, refusing decompression bombs.

The conversions are transformers' (the reference processor): EXIF orientation applied (`load_image`), any
alpha (an A band, or a palette's transparency) composited onto white, every other mode (CMYK, P, L, I;16 ...)
converted by Pillow (`convert_to_rgb`)."""

from __future__ import annotations

import io
import os

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import LlmkitError

DEFAULT_MAX_PIXELS = 32_000_000


class ImageInputError(LlmkitError, ValueError):
    """An image that cannot be used: not an image, truncated, or over the pixel limit."""


def open_image(
    source: bytes | str | os.PathLike[str] | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Upright RGB image from encoded bytes, a path or a PIL image; width*height over `max_pixels` is refused
    from the header, before any pixel is decoded."""
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _decode_header(source, max_pixels)
    _check_pixels(image, max_pixels)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageInputError(f"cannot decode the image: {err}") from None
    return to_rgb(upright)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white (transformers' `convert_to_rgb`)."""
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _decode_header(source: bytes | str | os.PathLike[str], max_pixels: int) -> Image.Image:
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        return Image.open(stream)
    except Image.DecompressionBombError as err:
        raise ImageInputError(f"image refused as a decompression bomb: {err}") from None
    except FileNotFoundError:
        raise ImageInputError(f"image file {source} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageInputError(f"not a readable image: {err}") from None


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageInputError(
            f"image of {width}x{height} = {width * height} pixels is over the limit of {max_pixels} pixels "
            "(a decompression bomb, or simply too large)"
        )
    if width < 1 or height < 1:
        raise ImageInputError(f"image of {width}x{height} pixels is empty")
