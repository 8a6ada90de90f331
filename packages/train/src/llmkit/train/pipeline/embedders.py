"""Embedders for semantic dedup and contamination: MiniLM (llmkit-core), an LM's pooled hidden states, hashing.

Any object with `name`, `dimension` and `embed(texts) -> unit float32 [n, dimension]` works
(`llmkit.core.embeddings.Embedder`); `open_embedder(spec)` builds the built-in ones from a name.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from llmkit.core.embeddings import Embedder
from llmkit.core.errors import InvalidParameterError

EMBEDDER_SPECS = "minilm, model:NAME_OR_PATH (an LM's mean-pooled hidden states) or hashing"


class LanguageModelEmbedder:
    """Mean-pooled final hidden states of an llmkit model (any catalog name, GGUF or HF directory)."""

    def __init__(self, model: str, batch_size: int = 16, max_tokens: int = 256):
        from llmkit.core import load_pretrained

        self.pretrained = load_pretrained(model, quiet=True)
        self.name = f"model:{model}"
        self.dimension = self.pretrained.config.hidden_size
        self.batch_size, self.max_tokens = batch_size, max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        from llmkit.core.models.attention import DenseCausalAttention

        model, tokenizer = self.pretrained.model, self.pretrained.tokenizer
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for row, text in enumerate(texts):
                ids = tokenizer.encode(text)[: self.max_tokens] or [tokenizer.eos_token_ids[0]]
                tokens = torch.tensor(ids, device=model.device)
                positions = torch.arange(len(ids), device=model.device)
                hidden = model(tokens, positions, DenseCausalAttention(1, len(ids), device=model.device))
                pooled = hidden.float().mean(0)
                out[row] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


class HashingEmbedder:
    """Feature hashing of words and word bigrams: lexical only, no model; for tests and quick runs."""

    name = "hashing"

    def __init__(self, dimension: int = 512):
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = re.findall(r"\w+", text.lower())
            for feature in [*tokens, *(f"{a} {b}" for a, b in itertools.pairwise(tokens))]:
                value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, value % self.dimension] += 1.0 if value >> 63 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def open_embedder(spec: str) -> Embedder:
    """An embedder from its name: `minilm`, `model:NAME_OR_PATH` or `hashing`."""
    if spec == "minilm":
        from llmkit.core.embeddings.minilm import MiniLMEmbedder

        return MiniLMEmbedder()
    if spec.startswith("model:") and len(spec) > len("model:"):
        return LanguageModelEmbedder(spec.removeprefix("model:"))
    if spec == "hashing":
        return HashingEmbedder()
    raise InvalidParameterError(f"unknown embedder {spec!r}; use {EMBEDDER_SPECS}")
