"""`EngineVision`: the vision side of a vision-language model (SmolVLM / Idefics3, LLaVA) inside the engine.

It turns prompt text with `<image>` places plus images into an `ImagePrompt` (tokens only: the vision tower
runs later), runs the tower once per image for every image a step first needs (all of a step's tiles in
one batch, images with the same content hash encoded once), and hands the step's `ImageRows` to
`paged_forward`, which puts the image embeddings in place of their placeholder rows (in the native fused
forward when it runs the language model, as for text steps)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.vision.image_places import ImageSource
from llmkit.core.models.vision.pretrained import VisionLanguagePretrained
from llmkit.core.ops.paged_step import InputEmbeddings

from .prompt import ImagePrompt, PromptImage


class ImageRows(InputEmbeddings):
    """Rows of a step's flat batch whose input is an image embedding instead of a token embedding."""


class EngineVision:
    def __init__(self, vlm: VisionLanguagePretrained):
        self.vlm = vlm
        self.image_token_id = vlm.model.config.image_token_id
        self.images_encoded = 0  # vision tower runs, one per image (statistics and tests)
        self.tower_batches = 0  # tower calls, one per step that needed any image

    @property
    def max_pixels(self) -> int:
        return self.vlm.max_pixels

    def prompt(self, text: str, images: Sequence[tuple[ImageSource, str]]) -> ImagePrompt:
        """`text` with one `<image>` per (image, detail): each expands to its tiles' image tokens."""
        expanded = self.vlm.expand_image_places(text, images)
        token_ids = self.vlm.tokenizer.encode(expanded.text)
        starts = self.vlm.image_tile_starts(token_ids, expanded)
        seq_len = self.vlm.image_seq_len
        prompt_images, used = [], 0
        for image in expanded.images:
            prompt_images.append(PromptImage(image, tuple(starts[used : used + image.num_tiles]), seq_len))
            used += image.num_tiles
        return ImagePrompt(token_ids, tuple(prompt_images))

    @torch.inference_mode()
    def encode(self, images: list[PromptImage]) -> None:
        """Fill the embeddings of `images` with one vision-tower call over all their tiles."""
        by_hash: dict[str, list[PromptImage]] = {}
        for image in images:
            by_hash.setdefault(image.image_hash, []).append(image)
        unique = [same[0] for same in by_hash.values()]
        pixels = torch.cat([torch.from_numpy(i.processed.pixel_values) for i in unique])
        masks = torch.cat([torch.from_numpy(i.processed.pixel_mask) for i in unique])
        features = self.vlm.model.image_features(pixels, masks)
        offset = 0
        for image in unique:
            tiles = image.processed.num_tiles
            for same in by_hash[image.image_hash]:
                same.embeddings = features[offset : offset + tiles]
            offset += tiles
        self.images_encoded += len(unique)
        self.tower_batches += 1

    def step_rows(self, chunks: Sequence[tuple[ImagePrompt | None, int, int, int]]) -> ImageRows | None:
        """For (prompt, first row, first position, token count) of each scheduled chunk: the rows that take image
        embeddings, after encoding every image those chunks reach for the first time (None: no image rows)."""
        missing = [
            i for prompt, _, start, n in chunks if prompt is not None for i in prompt.needs_encoding(start, start + n)
        ]
        if missing:
            self.encode(missing)
        rows: list[torch.Tensor] = []
        embeddings: list[torch.Tensor] = []
        for prompt, first_row, start, count in chunks:
            if prompt is None:
                continue
            for image in prompt.images:
                for tile, first, last in image.runs_within(start, start + count):
                    run_start = image.tile_starts[tile]
                    rows.append(torch.arange(first_row + first - start, first_row + last - start))
                    embeddings.append(image.embeddings[tile, first - run_start : last - run_start])
        if not rows:
            return None
        device = self.vlm.model.device
        return ImageRows(torch.cat(rows).to(device), torch.cat(embeddings))


def check_image_prompt(prompt, vision: EngineVision | None) -> ImagePrompt | None:
    """The prompt as an `ImagePrompt`, or None for text / token ids; images for a text-only model are refused."""
    if not isinstance(prompt, ImagePrompt):
        return None
    if vision is None:
        raise InvalidParameterError("this model does not accept images (it has no vision tower)")
    return prompt
