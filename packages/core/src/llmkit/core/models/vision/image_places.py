"""The `<image>` places of a prompt text: each expands to its image's tiles and image tokens (the text the model's
processor lays out), and the tokenized text must hold one run of image tokens per tile. Generation (core), the
engine (llmkit-serve) and image SFT (llmkit-train) all expand prompts here."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from PIL import Image

from ...errors import InvalidParameterError, ModelFormatError
from ...images import ClipImageProcessor, Idefics3ImageProcessor, ProcessedImage, open_image

IMAGE_PLACEHOLDER = "<image>"
ImageSource = bytes | str | os.PathLike[str] | Image.Image


@dataclasses.dataclass(frozen=True)
class ExpandedImages:
    """A prompt text with every `<image>` expanded, the processed images in order, and for each place (where the
    `<image>` stood in the original text, how many characters its expansion added)."""

    text: str
    images: tuple[ProcessedImage, ...]
    shifts: tuple[tuple[int, int], ...]

    @property
    def num_tiles(self) -> int:
        return sum(image.num_tiles for image in self.images)

    def moved(self, position: int) -> int:
        """A character position of the original text -> the same place in the expanded text."""
        return position + sum(delta for at, delta in self.shifts if at < position)


def expand_image_places(
    text: str,
    images: Sequence[tuple[ImageSource, str]],
    processor: Idefics3ImageProcessor | ClipImageProcessor,
    image_seq_len: int,
    max_pixels: int,
) -> ExpandedImages:
    """`text` with one `<image>` per (image, detail), in order: the count is checked before any image is decoded,
    then each image is processed at its detail and its place becomes its tiles' image tokens and tags."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise InvalidParameterError(
            f"the prompt has {len(pieces) - 1} {IMAGE_PLACEHOLDER} places but {len(images)} images were given"
        )
    processed = tuple(processor.process(open_image(image, max_pixels=max_pixels), detail) for image, detail in images)
    expanded, shifts, at = [pieces[0]], [], len(pieces[0])
    for image, piece in zip(processed, pieces[1:], strict=True):
        image_text = processor.prompt_text(image, image_seq_len)
        shifts.append((at, len(image_text) - len(IMAGE_PLACEHOLDER)))
        expanded += (image_text, piece)
        at += len(IMAGE_PLACEHOLDER) + len(piece)
    return ExpandedImages("".join(expanded), processed, tuple(shifts))


def image_tile_starts(token_ids: Sequence[int], image_token_id: int, image_seq_len: int, num_tiles: int) -> list[int]:
    """The first position of each tile's run of image tokens; refused unless there are exactly `num_tiles` runs of
    `image_seq_len` (a tokenizer that splits or merges the image token cannot carry the tower's embeddings)."""
    runs: list[tuple[int, int]] = []
    for position, token in enumerate(token_ids):
        if token != image_token_id:
            continue
        if runs and runs[-1][0] + runs[-1][1] == position:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((position, 1))
    if len(runs) != num_tiles or any(length != image_seq_len for _, length in runs):
        raise ModelFormatError(
            f"the tokenizer does not keep {IMAGE_PLACEHOLDER} as one token: expected {num_tiles} runs of "
            f"{image_seq_len} image tokens, found {[length for _, length in runs]}"
        )
    return [start for start, _ in runs]
