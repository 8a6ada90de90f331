"""Agreement statistics equal published worked examples and the `krippendorff` package; honeypots; Bradley-Terry."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from llmkit.core.cli import main
from llmkit.core.errors import InvalidParameterError
from llmkit.train.errors import DataError
from llmkit.train.pipeline.annotation import (
    agreement_report,
    bradley_terry,
    cohen_kappa,
    fleiss_kappa,
    honeypot_accuracy,
    krippendorff_alpha,
    pairs_from_ranking,
)

NA = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
# missing values. Published: nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
]


def test_cohen_kappa_wikipedia_example():
    """Wikipedia "Cohen's kappa", worked example: 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: 0.4."""
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_weighted_cohen_kappa_equals_sklearn_definition():
    """Quadratic weights: 1 - sum(w*O) / sum(w*E), checked against a hand computation on a 3x3 table."""
    first, second = [0, 0, 1, 1, 2, 2, 2, 0], [0, 1, 1, 2, 2, 2, 1, 0]
    observed = np.zeros((3, 3))
    for a, b in zip(first, second, strict=True):
        observed[a, b] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(1), observed.sum(0))
    weights = (np.subtract.outer(np.arange(3), np.arange(3))) ** 2
    by_hand = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert cohen_kappa(first, second, weights="quadratic") == pytest.approx(by_hand)


def test_fleiss_kappa_wikipedia_example():
    """Wikipedia "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories: kappa 0.210."""
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=5e-5)
    with pytest.raises(InvalidParameterError, match="same number"):
        fleiss_kappa([[1, 1], [2, 1]])


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_alpha_published_example(level, published):
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(published, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_equals_the_krippendorff_package(level):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    for _ in range(5):
        truth = rng.integers(1, 6, size=30)
        data = np.where(rng.random((5, 30)) < 0.7, truth, rng.integers(1, 6, size=(5, 30))).astype(float)
        data[rng.random(data.shape) < 0.15] = np.nan
        ours = krippendorff_alpha([[None if math.isnan(v) else v for v in row] for row in data], level)
        assert ours == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement=level), abs=1e-9)


def test_bradley_terry_wikipedia_worked_example():
    """Wikipedia "Bradley-Terry model", worked example (22 games, 4 teams): p = 0.640, 1.043, 0.660, 2.270
    after normalizing to geometric mean 1."""
    wins = {"A": {"B": 2, "D": 1}, "B": {"A": 3, "C": 5}, "C": {"B": 3, "D": 1}, "D": {"A": 4, "C": 3}}
    pairs = [(winner, loser) for winner, row in wins.items() for loser, n in row.items() for _ in range(n)]
    scores = bradley_terry(pairs)
    strength = dict(zip(scores.items, scores.strength, strict=True))
    assert [round(strength[t], 3) for t in "ABCD"] == [0.640, 1.043, 0.660, 2.270]
    assert scores.ranking()[0][0] == "D"


def test_bradley_terry_recovers_simulated_strengths_from_rankings():
    rng = random.Random(0)
    true = {f"m{i}": math.exp(0.4 * i) for i in range(6)}
    comparisons = []
    for _ in range(3000):
        a, b = rng.sample(sorted(true), 2)
        comparisons.append((a, b) if rng.random() < true[a] / (true[a] + true[b]) else (b, a))
    comparisons += pairs_from_ranking(["m5", "m4", "m3"])
    scores = bradley_terry(comparisons, prior=1.0)
    assert [item for item, _ in scores.ranking()] == [f"m{i}" for i in range(5, -1, -1)]
    fitted = dict(zip(scores.items, scores.log_strength, strict=True))
    slope = np.polyfit(range(6), [fitted[f"m{i}"] for i in range(6)], 1)[0]
    assert slope == pytest.approx(0.4, abs=0.05)
    with pytest.raises(InvalidParameterError, match="never won or never lost"):
        bradley_terry([("a", "b"), ("a", "b")])
    assert bradley_terry([("a", "b"), ("a", "b")], prior=1.0).probability("a", "b") > 0.5


def test_honeypots_flag_the_careless_annotator():
    gold = {f"h{i}": i % 2 for i in range(10)}
    annotations = [("careful", f"h{i}", i % 2) for i in range(10)]
    annotations += [("careless", f"h{i}", 0) for i in range(10)]  # always answers 0: 50%
    annotations += [("new", "h0", 1)]  # too few honeypots to judge
    results = {r.annotator: r for r in honeypot_accuracy(annotations, gold, threshold=0.8, min_items=5)}
    assert results["careful"].accuracy == 1.0 and not results["careful"].flagged
    assert results["careless"].accuracy == 0.5 and results["careless"].flagged
    assert results["careless"].interval[1] < 0.8 + 0.05
    assert results["new"].answered == 1 and not results["new"].flagged


def test_agreement_report_from_annotation_rows():
    rows = []
    for coder_index, row in enumerate(KRIPPENDORFF_2011):
        for unit, value in enumerate(row):
            if value is not None:
                rows.append((f"coder{coder_index}", f"unit{unit}", value))
    report = agreement_report(rows, "interval")
    assert report["krippendorff_alpha"]["value"] == pytest.approx(0.849, abs=5e-4)
    assert report["annotators"] == 4 and report["items"] == 12
    assert report["fleiss_kappa"] is None  # items have 1 to 4 ratings
    assert set(report["cohen_kappa"]) == {f"coder{a}|coder{b}" for a in range(4) for b in range(a + 1, 4)}


# Issue 25: categories were ordered as text, so 10 sorted before 2 and weighted statistics were wrong.
@pytest.mark.parametrize(("weights", "expected"), [("linear", 0.6), ("quadratic", 0.8)])
def test_weighted_cohen_kappa_orders_numbers_numerically(weights, expected):
    first, second = [1, 2, 9, 10], [2, 2, 10, 10]
    assert cohen_kappa_score(first, second, weights=weights) == pytest.approx(expected)
    assert cohen_kappa(first, second, weights=weights) == pytest.approx(expected)


def twelve_point_ratings(seed: int, coders: int = 4, units: int = 40) -> np.ndarray:
    """[coders, units] ratings on 1..12 that mostly agree within a step, with some missing (NaN)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 13, size=units)
    data = np.clip(truth + rng.integers(-1, 2, size=(coders, units)), 1, 12).astype(float)
    data[rng.random(data.shape) < 0.1] = np.nan
    return data


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_with_twelve_categories_and_halves_equals_the_package(level):
    krippendorff = pytest.importorskip("krippendorff")
    for seed in range(5):
        data = twelve_point_ratings(seed)
        data[:, ::3] += 0.5  # ints and floats mixed: 1.5 must rank between 1 and 2, not before every int
        rows = [[None if math.isnan(v) else (int(v) if v.is_integer() else v) for v in row] for row in data]
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert krippendorff_alpha(rows, level) == pytest.approx(expected, abs=1e-9)


def test_ordinal_alpha_of_text_labels_follows_the_declared_order():
    krippendorff = pytest.importorskip("krippendorff")
    order = [f"level {g}" for g in range(1, 13)]  # as text, "level 10" sorts before "level 2"
    data = twelve_point_ratings(11)
    rows = [[None if math.isnan(v) else order[int(v) - 1] for v in row] for row in data]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert krippendorff_alpha(rows, "ordinal", order=order) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(InvalidParameterError, match="declare it"):
        krippendorff_alpha(rows, "ordinal")


def annotation_rows(data: np.ndarray, labels=lambda v: int(v)) -> list[tuple[str, str, object]]:
    return [
        (f"coder{c}", f"unit{u}", labels(v))
        for c, row in enumerate(data)
        for u, v in enumerate(row)
        if not math.isnan(v)
    ]


def expected_pair_kappas(data: np.ndarray, weights: str) -> dict[str, float]:
    """sklearn's weighted kappa of each coder pair over their shared units, on the whole 1..12 order in use."""
    used = sorted({int(v) for v in data.flatten() if not math.isnan(v)})
    kappas = {}
    for a in range(len(data)):
        for b in range(a + 1, len(data)):
            both = ~np.isnan(data[a]) & ~np.isnan(data[b])
            kappas[f"coder{a}|coder{b}"] = cohen_kappa_score(
                data[a][both].astype(int), data[b][both].astype(int), weights=weights, labels=used
            )
    return kappas


def test_ordinal_agreement_report_equals_sklearn_and_krippendorff():
    krippendorff = pytest.importorskip("krippendorff")
    data = twelve_point_ratings(21)
    report = agreement_report(annotation_rows(data), "ordinal")
    assert report["categories"] == list(range(1, 13))
    expected = expected_pair_kappas(data, "linear")
    assert {pair: r["kappa"] for pair, r in report["cohen_kappa"].items()} == pytest.approx(expected, abs=1e-12)
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert report["krippendorff_alpha"]["value"] == pytest.approx(alpha, abs=1e-9)


def test_data_agreement_command_ordinal_with_a_declared_order(tmp_path, capsys):
    data = twelve_point_ratings(33, units=30)
    names = [f"grade {g}" for g in range(1, 13)]
    path = tmp_path / "annotations.jsonl"
    rows = annotation_rows(data, labels=lambda v: names[int(v) - 1])
    path.write_text("".join(json.dumps({"annotator": a, "item": i, "label": x}) + "\n" for a, i, x in rows))

    assert main(["data", "agreement", str(path), "--level", "ordinal"]) == 2
    assert "declare it" in capsys.readouterr().err
    assert main(["data", "agreement", str(path), "--level", "ordinal", "--order", ",".join(names)]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = expected_pair_kappas(data, "linear")
    assert {pair: r["kappa"] for pair, r in report["cohen_kappa"].items()} == pytest.approx(expected, abs=1e-12)

    numbers = tmp_path / "numbers.jsonl"
    rows = annotation_rows(data)
    numbers.write_text("".join(json.dumps({"annotator": a, "item": i, "label": x}) + "\n" for a, i, x in rows))
    assert main(["data", "agreement", str(numbers), "--level", "ordinal"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {pair: r["kappa"] for pair, r in report["cohen_kappa"].items()} == pytest.approx(expected, abs=1e-12)
    with pytest.raises(DataError, match="an order applies to nominal or ordinal"):
        agreement_report(rows, "interval", order=list(range(1, 13)))
