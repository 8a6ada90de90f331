"""The Idefics3 / SmolVLM image processor in Pillow + numpy, and the image-token layout of their prompts.

Steps (transformers' `Idefics3ImageProcessor`): resize so the longest edge is `size.longest_edge`; with image
splitting, grow each side to a multiple of `max_image_size.longest_edge`, cut row-major tiles of that size and
append the whole image squashed to one tile (the global image); without, squash to one tile. Then rescale and
normalize. `detail`: "low" = one tile, "high" = the config's tiling, "auto" = low when the image already fits
one tile, high otherwise."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InvalidParameterError
from .loading import to_rgb

DETAILS = ("auto", "low", "high")
_MAX_SIDE = 4096  # transformers' MAX_IMAGE_SIZE: no side is resized past 4k
_DEFAULT_MEAN = (0.5, 0.5, 0.5)
_DEFAULT_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class ProcessedImage:
    """Tiles ready for the vision tower: row-major crops then the global image (or the one tile)."""

    pixel_values: np.ndarray  # [tiles, 3, tile, tile] float32
    pixel_mask: np.ndarray  # [tiles, tile, tile] bool (all True: every tile is whole)
    rows: int  # 0 when the image is one tile
    cols: int
    image_hash: str  # sha256 of the pixel values: same image and detail, same hash

    @property
    def num_tiles(self) -> int:
        return self.pixel_values.shape[0]


@dataclasses.dataclass(frozen=True)
class Idefics3ImageProcessor:
    """Settings as in an HF `preprocessor_config.json` (see `from_hf_dict`)."""

    tile_size: int = 364
    longest_edge: int = 4 * 364
    do_resize: bool = True
    do_image_splitting: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, ...] = _DEFAULT_MEAN
    image_std: tuple[float, ...] = _DEFAULT_STD
    resample: int = Image.Resampling.LANCZOS

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> Idefics3ImageProcessor:
        tile = (raw.get("max_image_size") or {}).get("longest_edge", 364)
        size = raw.get("size") or {}
        if "longest_edge" not in size and size:
            raise InvalidParameterError(f"preprocessor size {size} has no longest_edge (Idefics3 resizes by it)")
        return cls(
            tile_size=int(tile),
            longest_edge=int(size.get("longest_edge", 4 * tile)),
            do_resize=bool(raw.get("do_resize", True)),
            do_image_splitting=bool(raw.get("do_image_splitting", True)),
            do_rescale=bool(raw.get("do_rescale", True)),
            rescale_factor=float(raw.get("rescale_factor", 1 / 255)),
            do_normalize=bool(raw.get("do_normalize", True)),
            image_mean=_triple(raw.get("image_mean", _DEFAULT_MEAN)),
            image_std=_triple(raw.get("image_std", _DEFAULT_STD)),
            resample=int(raw.get("resample", Image.Resampling.LANCZOS)),
        )

    def process(self, image: Image.Image, detail: str = "high") -> ProcessedImage:
        if detail not in DETAILS:
            raise InvalidParameterError(f"unknown detail {detail!r}; choose one of {', '.join(DETAILS)}")
        image = to_rgb(image)
        split = self.do_image_splitting and self._tiles_for(detail, image.size)
        if self.do_resize:
            image = self._resize(image, *_longest_edge_size(image.height, image.width, self.longest_edge))
        rows = cols = 0
        if split:
            image = self._resize(image, *self._multiple_of_tile_size(image.height, image.width))
            tiles, rows, cols = self._split(image)
        else:
            tiles = [self._resize(image, self.tile_size, self.tile_size)]
        pixels = np.stack([self._normalize(np.asarray(tile)) for tile in tiles])
        mask = np.ones((pixels.shape[0], *pixels.shape[2:]), dtype=bool)
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()
        return ProcessedImage(pixels, mask, rows, cols, digest)

    def prompt_text(self, processed: ProcessedImage, image_seq_len: int) -> str:
        """The text one processed image becomes in the prompt (see `image_prompt_text`)."""
        return image_prompt_text(processed.rows, processed.cols, image_seq_len)

    def _tiles_for(self, detail: str, size: tuple[int, int]) -> bool:
        if detail == "auto":
            return max(size) > self.tile_size
        return detail == "high"

    def _resize(self, image: Image.Image, height: int, width: int) -> Image.Image:
        return image.resize((width, height), resample=self.resample)

    def _multiple_of_tile_size(self, height: int, width: int) -> tuple[int, int]:
        tile, aspect = self.tile_size, width / height
        if width >= height:
            width = math.ceil(width / tile) * tile
            height = math.ceil(int(width / aspect) / tile) * tile
        else:
            height = math.ceil(height / tile) * tile
            width = math.ceil(int(height * aspect) / tile) * tile
        return height, width

    def _split(self, image: Image.Image) -> tuple[list[Image.Image], int, int]:
        tile = self.tile_size
        if image.height <= tile and image.width <= tile:
            return [image], 0, 0
        rows, cols = image.height // tile, image.width // tile
        crops = [
            image.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile)) for r in range(rows) for c in range(cols)
        ]
        return [*crops, self._resize(image, tile, tile)], rows, cols

    def _normalize(self, pixels: np.ndarray) -> np.ndarray:
        """HWC uint8 -> CHW float32, as transformers computes it (float64 rescale, float32 normalize)."""
        chw = np.moveaxis(pixels, -1, 0)
        out = chw.astype(np.float64) * self.rescale_factor if self.do_rescale else chw.astype(np.float64)
        out = out.astype(np.float32)
        if self.do_normalize:
            mean = np.array(self.image_mean, dtype=np.float32)[:, None, None]
            std = np.array(self.image_std, dtype=np.float32)[:, None, None]
            out = (out - mean) / std
        return out.astype(np.float32)


def image_prompt_text(rows: int, cols: int, image_seq_len: int) -> str:
    """The text one image becomes in the prompt (transformers' Idefics3/SmolVLM processor layout)."""
    fake, image, global_tag = "<fake_token_around_image>", "<image>", "<global-img>"
    whole = f"{fake}{global_tag}{image * image_seq_len}{fake}"
    if rows == 0 and cols == 0:
        return whole
    text = ""
    for r in range(rows):
        for c in range(cols):
            text += f"{fake}<row_{r + 1}_col_{c + 1}>{image * image_seq_len}"
        text += "\n"
    return text + "\n" + whole


def _longest_edge_size(height: int, width: int, longest: int) -> tuple[int, int]:
    """transformers' resize target: longest edge = `longest` (up or down), the other side even, capped at 4k."""
    aspect = width / height
    if width >= height:
        width, height = longest, int(longest / aspect)
        height += height % 2
    else:
        height, width = longest, int(longest * aspect)
        width += width % 2
    height, width = max(height, 1), max(width, 1)
    aspect = width / height
    if width >= height and width > _MAX_SIDE:
        width, height = _MAX_SIDE, int(_MAX_SIDE / aspect)
    elif height > width and height > _MAX_SIDE:
        height, width = _MAX_SIDE, int(_MAX_SIDE * aspect)
    return max(height, 1), max(width, 1)


def _triple(values: Any) -> tuple[float, ...]:
    values = tuple(float(v) for v in (values if isinstance(values, list | tuple) else [values] * 3))
    if len(values) != 3:
        raise InvalidParameterError(f"image mean/std need 3 values (RGB), got {values}")
    return values
