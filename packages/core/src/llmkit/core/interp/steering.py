"""Steering vectors: a direction added to the residual stream at one layer, on every token of every forward.

The usual recipe builds the direction as the difference of the mean residuals of two prompt sets
(e.g. positive minus negative sentiment) and scales it. Layers count as in `capture`: layer i steers the
residual entering decoder layer i (0 is the embedding output).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import torch

from ..errors import InvalidParameterError
from ..models.llama import LlamaModel
from .capture import Positions, capture_activations, site_module


@dataclasses.dataclass
class SteeringVector:
    layer: int
    vector: torch.Tensor  # [hidden]
    scale: float = 1.0

    def scaled(self, scale: float) -> SteeringVector:
        return dataclasses.replace(self, scale=scale)


Steering = SteeringVector | Sequence[SteeringVector]


def difference_of_means(
    model: LlamaModel,
    positive_prompts: Sequence[Sequence[int]],
    negative_prompts: Sequence[Sequence[int]],
    layer: int,
    positions: Positions = "last",
) -> SteeringVector:
    """mean(residual | positive) - mean(residual | negative) at `layer`, over prompts and selected positions."""
    if not positive_prompts or not negative_prompts:
        raise InvalidParameterError("both prompt sets need at least one prompt")
    key = (layer, "resid")
    positive = capture_activations(model, positive_prompts, [key], positions)[key]
    negative = capture_activations(model, negative_prompts, [key], positions)[key]
    return SteeringVector(layer, positive.mean((0, 1)) - negative.mean((0, 1)))


class SteeringHandle:
    """Hooks that add steering vectors to a model's residual stream until `remove()`."""

    def __init__(self, model: LlamaModel, steering: Steering):
        vectors = [steering] if isinstance(steering, SteeringVector) else list(steering)
        self.vectors = vectors
        self._handles = []
        try:
            for item in vectors:
                if item.vector.shape != (model.config.hidden_size,):
                    raise InvalidParameterError(
                        f"steering vector shape {tuple(item.vector.shape)} is not ({model.config.hidden_size},)"
                    )
                module = site_module(model, item.layer, "resid")
                delta = (item.scale * item.vector.detach()).to(device=model.device, dtype=model.dtype)
                self._handles.append(module.register_forward_hook(lambda _m, _a, out, delta=delta: out + delta))
        except BaseException:
            self.remove()
            raise

    def describe(self) -> str:
        return ", ".join(
            f"layer {v.layer} (scale {v.scale:g}, norm {float(v.vector.norm()):.3g})" for v in self.vectors
        )

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@contextlib.contextmanager
def steer(model: LlamaModel, steering: Steering | None) -> Iterator[SteeringHandle | None]:
    """Add the steering vector(s) inside the block (nothing when `steering` is None); removed on exit."""
    if steering is None:
        yield None
        return
    handle = SteeringHandle(model, steering)
    try:
        yield handle
    finally:
        handle.remove()
