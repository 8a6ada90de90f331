"""Linear probes: a planted linearly separable direction is learned (>95% held out), shuffled labels
stay at chance, and the built-in statements are balanced with true/false twins."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.interp import train_probe, train_test_split, true_false_statements


def _planted(count=400, dim=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(dim, generator=generator)
    direction /= direction.norm()
    labels = torch.randint(0, 2, (count,), generator=generator)
    # Unit noise everywhere plus +-3 along the planted direction: the classes are 6 noise sigmas apart.
    features = torch.randn(count, dim, generator=generator) + (2 * labels[:, None] - 1) * 3.0 * direction
    return features, labels


def test_probe_learns_a_planted_direction():
    features, labels = _planted()
    result = train_probe(features, labels)
    assert result.heldout_accuracy > 0.95
    assert result.num_train + result.num_heldout == len(labels) and result.num_heldout == 100


def test_probe_on_shuffled_labels_stays_at_chance():
    features, labels = _planted(count=600)
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))]
    accuracies = [train_probe(features, shuffled, seed=s).heldout_accuracy for s in range(3)]
    mean = sum(accuracies) / len(accuracies)
    assert 0.38 < mean < 0.62, accuracies


def test_split_is_disjoint_and_seeded():
    train, heldout = train_test_split(50, 0.2, seed=1)
    assert len(heldout) == 10 and set(train.tolist()).isdisjoint(heldout.tolist())
    assert torch.equal(train, train_test_split(50, 0.2, seed=1)[0])


def test_groups_stay_on_one_side_of_the_split():
    groups = [i // 2 for i in range(40)]
    train, heldout = train_test_split(40, 0.25, seed=3, groups=groups)
    assert len(heldout) == 10 and len(train) == 30
    assert {groups[i] for i in train.tolist()}.isdisjoint(groups[i] for i in heldout.tolist())


def test_twin_memorization_is_not_scored_with_groups():
    """Twins share their features but not their label: an item-level split lets a probe score below
    chance by remembering the twin; a split by pair does not."""
    generator = torch.Generator().manual_seed(2)
    shared = torch.randn(100, 32, generator=generator).repeat_interleave(2, dim=0)
    features = shared + 0.05 * torch.randn(200, 32, generator=generator)
    labels = torch.tensor([1, 0] * 100)
    pairs = [i // 2 for i in range(200)]
    by_item = [train_probe(features, labels, seed=s).heldout_accuracy for s in range(3)]
    grouped = [train_probe(features, labels, seed=s, groups=pairs).heldout_accuracy for s in range(3)]
    assert sum(by_item) / 3 < 0.35, by_item
    assert 0.35 < sum(grouped) / 3 < 0.65, grouped


def test_bad_inputs_fail_clearly():
    with pytest.raises(InvalidParameterError, match="labels must be 0 or 1"):
        train_probe(torch.randn(10, 3), torch.arange(10))
    with pytest.raises(InvalidParameterError, match="expected"):
        train_probe(torch.randn(10, 3), torch.zeros(9))
    with pytest.raises(InvalidParameterError, match="heldout_fraction"):
        train_test_split(10, 1.5, seed=0)
    with pytest.raises(InvalidParameterError, match="groups"):
        train_test_split(10, 0.5, seed=0, groups=[0] * 9)
    with pytest.raises(InvalidParameterError, match="nothing to train on"):
        train_test_split(10, 0.5, seed=0, groups=[0] * 10)


def test_statements_are_balanced_twins():
    items = true_false_statements()
    assert len(items) == 200 and sum(i.label for i in items) == 100
    assert len({i.text for i in items}) == 200
    for true, false in zip(items[::2], items[1::2], strict=True):
        assert true.label and not false.label and true.template == false.template and true.pair == false.pair
