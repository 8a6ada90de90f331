"""`MultimodalPrompt`: token ids plus image embeddings that replace the embeddings of placeholder tokens."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ...errors import InvalidParameterError


@dataclasses.dataclass(frozen=True)
class ImageSpan:
    """One contiguous block of image embeddings [length, hidden] at prompt positions start .. start+length.

    `image_hash` is the sha256 of the image's preprocessed pixels: the key under which cached KV blocks of this
    span may be shared (two images behind the same placeholder ids never share one)."""

    start: int
    embeddings: torch.Tensor
    image_hash: str
    image_index: int = 0

    @property
    def length(self) -> int:
        return self.embeddings.shape[0]

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclasses.dataclass(frozen=True)
class MultimodalPrompt:
    """What a vision-language model consumes: `token_ids` with `spans` of image embeddings over placeholders."""

    token_ids: list[int]
    spans: list[ImageSpan] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        previous_end = 0
        for span in sorted(self.spans, key=lambda s: s.start):
            if span.embeddings.dim() != 2:
                raise InvalidParameterError(
                    f"image span embeddings must be [length, hidden], got {tuple(span.embeddings.shape)}"
                )
            if span.start < previous_end or span.end > len(self.token_ids):
                raise InvalidParameterError(
                    f"image span {span.start}..{span.end} overlaps another or runs past the prompt's "
                    f"{len(self.token_ids)} tokens"
                )
            previous_end = span.end

    @property
    def num_image_tokens(self) -> int:
        return sum(span.length for span in self.spans)

    def input_embeddings(
        self, embed_tokens: Callable[[torch.Tensor], torch.Tensor], device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """[len(token_ids), hidden]: token embeddings with every span's positions replaced by its image embeddings."""
        embeddings = embed_tokens(torch.tensor(self.token_ids, dtype=torch.long, device=device))
        for span in self.spans:
            embeddings[span.start : span.end] = span.embeddings.to(embeddings.device, embeddings.dtype)
        return embeddings
