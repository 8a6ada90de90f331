"""Limits on images in chat requests, and the `llmkit serve` options that set them (a light module: the CLI
imports it on load)."""

from __future__ import annotations

import dataclasses

from llmkit.core.errors import InvalidParameterError


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What one chat request may send: images, encoded bytes per image, pixels per image; remote hosts."""

    max_images: int = 8
    max_image_bytes: int = 8 * 2**20
    max_pixels: int = 16_000_000
    url_allow: tuple[str, ...] = ()  # hosts remote image URLs may name (exact, case-insensitive); () = none
    fetch_timeout: float = 10.0  # seconds for one remote image

    def __post_init__(self) -> None:
        if min(self.max_images, self.max_image_bytes, self.max_pixels) < 1 or self.fetch_timeout <= 0:
            raise InvalidParameterError(f"image limits must be positive, got {self}")


def add_image_options(parser) -> None:
    """`llmkit serve` options for images in chat requests."""
    group = parser.add_argument_group("images (vision-language models)")
    group.add_argument(
        "--image-url-allow",
        action="append",
        default=[],
        metavar="HOST",
        help="fetch http(s) image URLs from this host (repeatable; default: none, only data: URLs)",
    )
    group.add_argument("--max-images-per-request", type=int, default=ImageLimits.max_images, help="default 8")
    group.add_argument(
        "--max-image-bytes", type=int, default=ImageLimits.max_image_bytes, help="encoded bytes per image (8 MiB)"
    )
    group.add_argument(
        "--max-image-pixels", type=int, default=ImageLimits.max_pixels, help="width x height per image (16M)"
    )
    group.add_argument("--image-fetch-timeout", type=float, default=ImageLimits.fetch_timeout, help="seconds (10)")


def image_limits_from(args) -> ImageLimits:
    return ImageLimits(
        args.max_images_per_request,
        args.max_image_bytes,
        args.max_image_pixels,
        tuple(args.image_url_allow),
        args.image_fetch_timeout,
    )
