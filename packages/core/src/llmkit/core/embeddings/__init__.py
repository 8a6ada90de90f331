"""Sentence embeddings shared by llmkit packages: the `Embedder` protocol and all-MiniLM-L6-v2 in plain torch.

llmkit-context retrieves with it and llmkit-train deduplicates with it; neither imports the other, so
the encoder lives here.
"""

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-length float32 vectors [n, dimension]."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


__all__ = ["Embedder"]
