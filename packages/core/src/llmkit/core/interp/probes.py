"""Linear probes: logistic regression on captured activations, scored on a held-out split."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..errors import InvalidParameterError


@dataclasses.dataclass
class ProbeResult:
    train_accuracy: float
    heldout_accuracy: float
    num_train: int
    num_heldout: int
    weight: torch.Tensor  # [features] in the standardized space
    bias: float


def train_test_split(
    count: int, heldout_fraction: float, seed: int, groups: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled train and held-out indices (both non-empty). Items sharing a group (e.g. a true statement
    and its false twin) land on the same side, so a probe cannot score by remembering the shared wording."""
    if not 0 < heldout_fraction < 1:
        raise InvalidParameterError(f"heldout_fraction must be in (0, 1), not {heldout_fraction}")
    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        groups = range(count)
    elif len(groups) != count:
        raise InvalidParameterError(f"{len(groups)} groups for {count} items")
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(int(group), []).append(index)
    order = [list(members)[i] for i in torch.randperm(len(members), generator=generator).tolist()]
    wanted = max(1, round(count * heldout_fraction))
    heldout: list[int] = []
    for group in order:
        if len(heldout) >= wanted:
            break
        heldout.extend(members[group])
    if len(heldout) >= count:
        raise InvalidParameterError(f"{count} items in {len(members)} groups leave nothing to train on")
    held = set(heldout)
    train = [i for group in order for i in members[group] if i not in held]
    return torch.tensor(train), torch.tensor(heldout)


def train_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    heldout_fraction: float = 0.25,
    seed: int = 0,
    groups: Sequence[int] | None = None,
    weight_decay: float = 1e-2,
    steps: int = 200,
) -> ProbeResult:
    """Fit a logistic-regression probe (L-BFGS, L2 penalty) on standardized features [N, D] with 0/1
    labels [N]; standardization uses the training split's statistics only. `groups` keeps related items
    on one side of the split (see `train_test_split`)."""
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise InvalidParameterError(f"features [N, D] and labels [N] expected, got {features.shape}, {labels.shape}")
    x = features.detach().to(torch.float64).cpu()
    y = labels.detach().to(torch.float64).cpu()
    if not torch.all((y == 0) | (y == 1)):
        raise InvalidParameterError("labels must be 0 or 1")
    train, heldout = train_test_split(x.shape[0], heldout_fraction, seed, groups)
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss_fn():
        optimizer.zero_grad()
        logits = x[train] @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[train])
        loss = loss + weight_decay * weight.pow(2).sum() / 2
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(loss_fn)
    with torch.no_grad():
        predicted = (x @ weight + bias) > 0
        correct = predicted == y.bool()
    return ProbeResult(
        train_accuracy=float(correct[train].double().mean()),
        heldout_accuracy=float(correct[heldout].double().mean()),
        num_train=len(train),
        num_heldout=len(heldout),
        weight=weight.detach(),
        bias=float(bias.detach()),
    )
