"""The solver interface: samples and their rendered prompts in, one JSON-able response per sample out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..client import ModelClient
from ..data import Sample

Prompt = str | list[dict[str, str]]  # raw text or chat messages, as the task's PromptFormat renders it


class Solver(Protocol):
    """Turns prompts into responses; `kind` names it in results and YAML (`solver: {type: ...}`)."""

    kind: str

    def solve(
        self, samples: Sequence[Sample], prompts: Sequence[Prompt], client: ModelClient, seed: int
    ) -> list[Mapping[str, Any]]: ...


def stable_seed(seed: int, *parts: object) -> int:
    """A sampling seed from the run seed and the sample's identity: the same request hashes the same."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()
    return int(digest[:15], 16)
