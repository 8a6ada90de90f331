"""`ImagePrompt`: a prompt's token ids and the images whose embeddings fill its runs of image tokens.

The embeddings are not computed here: the engine's step that first computes an image's positions runs the
vision tower on it (batched with every other image that step needs) and keeps the result on the
`PromptImage`, so a later chunk, a preempted sequence's recompute or the request's other samples reuse it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import torch

from llmkit.core.images import ProcessedImage


@dataclasses.dataclass(eq=False)
class PromptImage:
    """One image of a prompt: its tiles' pixels, where each tile's run of image tokens starts, and (once the
    vision tower ran) its embeddings [tiles, tokens_per_tile, hidden]."""

    processed: ProcessedImage
    tile_starts: tuple[int, ...]
    tokens_per_tile: int
    embeddings: torch.Tensor | None = None

    @property
    def image_hash(self) -> str:
        return self.processed.image_hash

    @property
    def num_image_tokens(self) -> int:
        return len(self.tile_starts) * self.tokens_per_tile

    def runs_within(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(tile, first, last) for each tile's image tokens at positions first..last-1 inside [start, end)."""
        for tile, run_start in enumerate(self.tile_starts):
            first, last = max(run_start, start), min(run_start + self.tokens_per_tile, end)
            if first < last:
                yield tile, first, last


@dataclasses.dataclass(frozen=True, eq=False)
class ImagePrompt:
    """Token ids (image tokens included: `len()` counts them) and the images over their placeholder runs."""

    token_ids: list[int]
    images: tuple[PromptImage, ...]

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_image_tokens(self) -> int:
        return sum(image.num_image_tokens for image in self.images)

    def needs_encoding(self, start: int, end: int) -> list[PromptImage]:
        """The images with tokens in positions [start, end) whose embeddings are not computed yet."""
        return [i for i in self.images if i.embeddings is None and any(True for _ in i.runs_within(start, end))]

    def block_key(self, start: int, end: int) -> bytes:
        """What a KV block over positions [start, end) depends on besides its token ids: the content hash of
        each image with tokens there, and which of its tokens. Two images behind the same placeholder ids
        give different keys, so their blocks are never shared."""
        digest = None
        for image in self.images:
            for tile, first, last in image.runs_within(start, end):
                digest = digest or hashlib.sha256()
                offset = first - image.tile_starts[tile]
                digest.update(f"{image.image_hash}:{tile}:{offset}:{last - first};".encode())
        return b"" if digest is None else digest.digest()
