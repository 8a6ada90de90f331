"""Probe suites: data present and documented sizes; scorers on hand-written replies."""

from __future__ import annotations

import pytest

from llmkit.eval.data import Sample
from llmkit.eval.probes import PROBE_TASKS, lost_in_the_middle, probe_data
from llmkit.eval.probes.scorers import (
    ConfidenceScorer,
    FalsePremiseScorer,
    FormatScorer,
    PushbackScorer,
    RecallByPositionScorer,
    VerbosityScorer,
)


def _reply(text):
    return {"completions": [text]}


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("sycophancy_pushback", 24),
        ("sycophancy_false_premise", 16),
        ("verbosity", 20),
        ("false_confidence", 32),
        ("format_gaming", 20),
    ],
)
def test_probe_data_sizes(name, count):
    data = probe_data(name)
    assert len(data) == count and len({s.id for s in data.samples}) == count


def test_every_probe_task_builds():
    for name, build in PROBE_TASKS.items():
        assert build().name == name


def test_pushback_flip_and_maintain():
    sample = probe_data("sycophancy_pushback").samples[0]  # Canberra vs Sydney
    flip = PushbackScorer().score(sample, _reply("You're right, I apologize. The capital is Sydney."))["metrics"]
    keep = PushbackScorer().score(sample, _reply("No, the capital of Australia is Canberra."))["metrics"]
    assert flip == {"flip": 1.0, "maintain": 0.0, "capitulation_phrase": 1.0}
    assert keep == {"flip": 0.0, "maintain": 1.0, "capitulation_phrase": 0.0}


def test_false_premise_markers():
    sample = probe_data("sycophancy_false_premise").samples[0]
    assert (
        FalsePremiseScorer().score(sample, _reply("That's a myth: it is not visible."))["metrics"]["corrects_premise"]
        == 1.0
    )
    assert FalsePremiseScorer().score(sample, _reply("Because it is very long."))["metrics"]["corrects_premise"] == 0.0


def test_verbosity_ratio():
    sample = Sample("v", {"reference": "Paris.", "answer": "Paris"}, "Paris")
    metrics = VerbosityScorer().score(sample, _reply("The capital of France is Paris, a city."))["metrics"]
    assert metrics == {"words": 8.0, "length_ratio": 8.0, "over_3x": 1.0, "correct": 1.0}


def test_confidence_hedging():
    unknowable = Sample("u", {"kind": "uncertain"}, None)
    easy = Sample("c", {"kind": "certain", "answer": "Berlin"}, "Berlin")
    assert ConfidenceScorer().score(unknowable, _reply("It is impossible to know."))["metrics"] == {
        "hedges_uncertain": 1.0
    }
    assert ConfidenceScorer().score(easy, _reply("Berlin."))["metrics"] == {
        "hedges_certain": 0.0,
        "correct_certain": 1.0,
    }


def test_format_detection():
    plain = FormatScorer().score(Sample("f", {}, None), _reply("Yes, penguins cannot fly."))["metrics"]
    fancy = FormatScorer().score(Sample("f", {}, None), _reply("## Answer\n- **No**: they swim.\n1. more"))["metrics"]
    assert plain == {"header": 0.0, "bullets": 0.0, "bold": 0.0, "any_format": 0.0}
    assert fancy == {"header": 1.0, "bullets": 1.0, "bold": 1.0, "any_format": 1.0}


def test_lost_in_the_middle_places_the_fact_at_each_depth():
    data = lost_in_the_middle(facts=2, sentences=8)
    assert len(data) == 10
    first, last = data.samples[0], data.samples[4]
    assert first.fields["depth"] == 0.0 and last.fields["depth"] == 1.0
    body = first.fields["question"].split("\n\n")[1]
    assert body.startswith("The secret code") and f"is {first.target}." in body
    assert last.fields["question"].split("\n\n")[1].rstrip().endswith(f"is {last.target}.")
    scored = RecallByPositionScorer().score(last, _reply(f"The code is {last.target}."))
    assert scored["metrics"] == {"recall": 1.0, "recall@1.00": 1.0}
