"""A seeded, resumable order over a data set: a fresh permutation per epoch, state = items consumed."""

from __future__ import annotations

import torch


class DataOrder:
    """Hands out item indices in shuffled epochs; resuming from `consumed` replays exactly the same order."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size < 1:
            raise ValueError("cannot iterate over an empty data set")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.consumed = 0
        self._epoch, self._permutation = -1, torch.arange(size)

    @property
    def epoch(self) -> float:
        return self.consumed / self.size

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            self._epoch = epoch
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._permutation = torch.randperm(self.size, generator=generator)
        return self._permutation

    def take(self, count: int) -> list[int]:
        """The next `count` indices (crossing into the next epoch when this one runs out)."""
        out = []
        while len(out) < count:
            epoch, offset = divmod(self.consumed, self.size)
            chunk = self._order(epoch)[offset : offset + count - len(out)].tolist()
            out.extend(chunk)
            self.consumed += len(chunk)
        return out

    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["size"] != self.size or state["seed"] != self.seed:
            raise ValueError(
                f"the checkpoint's data order is over {state['size']} items with seed {state['seed']}; "
                f"this run has {self.size} items with seed {self.seed}"
            )
        self.consumed = int(state["consumed"])
