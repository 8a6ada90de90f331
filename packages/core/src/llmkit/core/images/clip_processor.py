"""The CLIP / LLaVA image processor in Pillow + numpy: one square image per picture.

Steps (transformers' `CLIPImageProcessor` and `LlavaImageProcessor`, PIL backend): with `do_pad` (LLaVA-1.5,
and what llama.cpp does for an `mlp` mmproj) pad to a square with the mean colour; resize so the shortest edge is
`size.shortest_edge` (or to `size.height` x `size.width`); center-crop to `crop_size`; rescale and normalize.
A LLaVA image is always one tile, so `detail` does not change its cost (every level is accepted)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InvalidParameterError
from .idefics3_processor import DETAILS, ProcessedImage, _triple
from .loading import to_rgb

IMAGE_TOKEN = "<image>"
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class ClipImageProcessor:
    """Settings as in an HF `preprocessor_config.json` of `CLIPImageProcessor` / `LlavaImageProcessor`."""

    shortest_edge: int | None = 224  # resize by the shortest edge ...
    resize_to: tuple[int, int] | None = None  # ... or to (height, width)
    crop_size: tuple[int, int] | None = (224, 224)  # (height, width); None: no center crop
    do_pad: bool = False
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD
    resample: int = Image.Resampling.BICUBIC

    def __post_init__(self) -> None:
        if (self.shortest_edge is None) == (self.resize_to is None):
            raise InvalidParameterError("a CLIP image processor resizes by shortest_edge or to height x width")

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> ClipImageProcessor:
        size = raw.get("size", {"shortest_edge": 224})
        if isinstance(size, int):
            size = {"shortest_edge": size}
        if "shortest_edge" in size:
            shortest, resize_to = int(size["shortest_edge"]), None
        elif "height" in size and "width" in size:
            shortest, resize_to = None, (int(size["height"]), int(size["width"]))
        else:
            raise InvalidParameterError(f"preprocessor size {size} has neither shortest_edge nor height and width")
        crop = raw.get("crop_size", {"height": 224, "width": 224})
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        do_crop = bool(raw.get("do_center_crop", True))
        return cls(
            shortest_edge=shortest,
            resize_to=resize_to,
            crop_size=(int(crop["height"]), int(crop["width"])) if do_crop else None,
            do_pad=bool(raw.get("do_pad", False)),
            do_rescale=bool(raw.get("do_rescale", True)),
            rescale_factor=float(raw.get("rescale_factor", 1 / 255)),
            do_normalize=bool(raw.get("do_normalize", True)),
            image_mean=_triple(raw.get("image_mean", OPENAI_CLIP_MEAN)),
            image_std=_triple(raw.get("image_std", OPENAI_CLIP_STD)),
            resample=int(raw.get("resample", Image.Resampling.BICUBIC)),
        )

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the pixels the vision tower gets (shortest-edge resizes must be cropped)."""
        if self.crop_size is not None:
            return self.crop_size
        if self.resize_to is None:
            raise InvalidParameterError("a shortest-edge resize without a center crop has no fixed output size")
        return self.resize_to

    def process(self, image: Image.Image, detail: str = "high") -> ProcessedImage:
        if detail not in DETAILS:
            raise InvalidParameterError(f"unknown detail {detail!r}; choose one of {', '.join(DETAILS)}")
        image = to_rgb(image)
        if self.do_pad:
            image = self._pad_to_square(image)
        height, width = self._resize_target(image.height, image.width)
        image = image.resize((width, height), resample=self.resample)
        pixels = np.moveaxis(np.asarray(image), -1, 0)
        if self.crop_size is not None:
            pixels = _center_crop(pixels, *self.crop_size)
        pixels = self._normalize(pixels)[None]
        mask = np.ones((1, *pixels.shape[2:]), dtype=bool)
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()
        return ProcessedImage(pixels, mask, 0, 0, digest)

    def prompt_text(self, processed: ProcessedImage, image_seq_len: int) -> str:
        """One image is `image_seq_len` image tokens in a row (transformers' LlavaProcessor)."""
        return IMAGE_TOKEN * image_seq_len

    def _pad_to_square(self, image: Image.Image) -> Image.Image:
        """The image centred on a square of the mean colour (int(mean * 255) per channel, as transformers)."""
        side = max(image.size)
        if image.width == image.height:
            return image
        background = tuple(int(m * 255) for m in self.image_mean)
        square = Image.new("RGB", (side, side), background)
        if image.width > image.height:
            square.paste(image, (0, (side - image.height) // 2))
        else:
            square.paste(image, ((side - image.width) // 2, 0))
        return square

    def _resize_target(self, height: int, width: int) -> tuple[int, int]:
        if self.resize_to is not None:
            return self.resize_to
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def _normalize(self, chw: np.ndarray) -> np.ndarray:
        """CHW uint8 -> float32 as transformers computes it (float64 rescale, float32 normalize)."""
        out = chw.astype(np.float64) * self.rescale_factor if self.do_rescale else chw.astype(np.float64)
        out = out.astype(np.float32)
        if self.do_normalize:
            mean = np.array(self.image_mean, dtype=np.float32)[:, None, None]
            std = np.array(self.image_std, dtype=np.float32)[:, None, None]
            out = (out - mean) / std
        return out.astype(np.float32)


def _center_crop(chw: np.ndarray, crop_height: int, crop_width: int) -> np.ndarray:
    """transformers' `center_crop`: zero-pad first when the image is smaller than the crop."""
    _, height, width = chw.shape
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    if top >= 0 and left >= 0:
        return chw[:, top : top + crop_height, left : left + crop_width]
    new_height, new_width = max(crop_height, height), max(crop_width, width)
    padded = np.zeros((chw.shape[0], new_height, new_width), dtype=chw.dtype)
    top_pad, left_pad = math.ceil((new_height - height) / 2), math.ceil((new_width - width) / 2)
    padded[:, top_pad : top_pad + height, left_pad : left_pad + width] = chw
    top, left = top + top_pad, left + left_pad
    rows = slice(max(0, top), min(new_height, top + crop_height))
    return padded[:, rows, max(0, left) : min(new_width, left + crop_width)]
