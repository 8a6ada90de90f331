"""Precomputed DPO reference log-probs on disk, tied to the reference weights and the tokenized data.

The file (safetensors) holds per-pair summed log-probs and completion lengths; its metadata holds a
fingerprint of the reference weights, a hash of every token id of the data, and the precision. A file
that disagrees on any of them, or whose first pairs no longer match a fresh forward pass, is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.progress import Progress
from safetensors import safe_open
from safetensors.torch import save_file

from ..config import DPOConfig
from ..errors import CheckpointError
from ..modeling.export import weights_fingerprint
from ..modeling.forward import autocast, sequence_logprobs
from ..runtime import Runtime
from .reward import PreferencePair, pair_batch

SPOT_CHECK_PAIRS = 2
TOLERANCE = 1e-3


def data_fingerprint(pairs: Sequence[PreferencePair]) -> str:
    digest = hashlib.sha256()
    for pair in pairs:
        for part in (pair.chosen.prompt, pair.chosen.completion, pair.rejected.prompt, pair.rejected.completion):
            digest.update(json.dumps(part).encode())
    return digest.hexdigest()


class ReferenceCache:
    def __init__(self, path: str | Path, runtime: Runtime, config: DPOConfig):
        self.path, self.runtime, self.config = Path(path), runtime, config
        self.message = ""

    def _reference_fingerprint(self) -> str:
        with self.runtime.reference_model() as model:
            return weights_fingerprint(model, include_adapters=False)

    @torch.no_grad()
    def compute(self, pairs: Sequence[PreferencePair], progress: bool = False) -> torch.Tensor:
        """[len(pairs), 4]: chosen sum, rejected sum, chosen count, rejected count (float64)."""
        rows = []
        size = self.config.batch_size
        with (
            Progress(disable=not progress, transient=True) as bar,
            self.runtime.reference_model() as model,
        ):
            was_training = model.training
            model.eval()
            task = bar.add_task("reference log-probs", total=len(pairs))
            for start in range(0, len(pairs), size):
                chunk = pairs[start : start + size]
                batch = pair_batch(chunk, self.runtime.pad_id, self.runtime.device)
                with autocast(self.runtime.device, self.config.bf16):
                    sums, counts = sequence_logprobs(model, batch.tokens_batch)
                chosen, rejected = sums.double().cpu().chunk(2)
                chosen_n, rejected_n = counts.double().cpu().chunk(2)
                rows.append(torch.stack([chosen, rejected, chosen_n, rejected_n], dim=1))
                bar.advance(task, len(chunk))
            model.train(was_training)
        return torch.cat(rows)

    def _metadata(self, pairs: Sequence[PreferencePair]) -> dict[str, str]:
        return {
            "reference": self._reference_fingerprint(),
            "data": data_fingerprint(pairs),
            "bf16": str(self.config.bf16),
            "dtype": self.config.dtype,
        }

    def load_or_build(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float, int, int]]:
        expected = self._metadata(pairs)
        if self.path.is_file():
            values = self._load(expected)
            self._spot_check(pairs, values)
            self.message = f"reference log-probs: {len(pairs)} pairs read from {self.path} (validated)"
        else:
            values = self.compute(pairs, progress=self.config.progress and self.runtime.context.is_main)
            if self.runtime.context.is_main:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                staging = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
                save_file({"values": values.contiguous()}, str(staging), metadata=expected)
                os.replace(staging, self.path)
            self.runtime.context.barrier()
            self.message = f"reference log-probs: {len(pairs)} pairs computed and written to {self.path}"
        return [(float(r[0]), float(r[1]), int(r[2]), int(r[3])) for r in values]

    def _load(self, expected: dict[str, str]) -> torch.Tensor:
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                values = handle.get_tensor("values")
        except Exception as err:
            raise CheckpointError(f"cannot read the reference cache {self.path}: {err}") from None
        labels = {"reference": "reference weights", "data": "tokenized data", "bf16": "bf16 setting", "dtype": "dtype"}
        for key, label in labels.items():
            if metadata.get(key) != expected[key]:
                raise CheckpointError(
                    f"reference cache {self.path} was computed for other {label} than this run's; "
                    "delete it (it is rebuilt) or point reference_cache elsewhere"
                )
        return values

    def _spot_check(self, pairs: Sequence[PreferencePair], values: torch.Tensor) -> None:
        fresh = self.compute(pairs[:SPOT_CHECK_PAIRS])
        stored = values[: len(fresh)]
        scale = stored[:, :2].abs().clamp(min=1.0)
        if not torch.all((fresh[:, :2] - stored[:, :2]).abs() <= TOLERANCE * scale):
            raise CheckpointError(
                f"reference cache {self.path} disagrees with a fresh forward pass of the reference model "
                f"(stored {stored[:, :2].tolist()}, recomputed {fresh[:, :2].tolist()}); delete it to rebuild"
            )
