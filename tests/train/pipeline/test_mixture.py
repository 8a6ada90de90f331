"""Mixtures: temperature-sampled proportions, oversampled tags, curricula; deterministic under a seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmkit.core.errors import InvalidParameterError
from llmkit.train.pipeline.mixture import (
    MixtureConfig,
    MixtureSource,
    apportion,
    build_mixture,
    parse_source_spec,
    source_probabilities,
)
from llmkit.train.pipeline.versioning import verify_dataset


@pytest.fixture
def sources(tmp_path):
    def write(name, count, tag_every=0):
        path = tmp_path / f"{name}.jsonl"
        rows = []
        for i in range(count):
            row = {"id": f"{name}-{i}", "text": f"{name} {i}", "difficulty": (i * 7919) % 101}
            if tag_every and i % tag_every == 0:
                row["tags"] = ["rare"]
            rows.append(row)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return MixtureSource(name, str(path))

    return write("web", 900, tag_every=30), write("code", 90), write("math", 10)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_temperature_flattens_proportions_and_the_report_states_them(sources, tmp_path):
    report = build_mixture(MixtureConfig(sources, total=1000, temperature=1.0, seed=1), tmp_path / "t1.jsonl")
    assert [s["selected"] for s in report["sources"]] == [900, 90, 10]
    report = build_mixture(MixtureConfig(sources, total=1000, temperature=3.0, seed=1), tmp_path / "t3.jsonl")
    expected = source_probabilities([900, 90, 10], 3.0)  # ∝ n^(1/3): 9.65, 4.48, 2.15
    assert [s["target_proportion"] for s in report["sources"]] == [round(float(p), 6) for p in expected]
    assert [s["selected"] for s in report["sources"]] == apportion(expected, 1000).tolist()
    math = report["sources"][2]
    assert math["unique_records"] == 10 and math["epochs"] == math["selected"] / 10  # oversampled by repetition
    rows = _read(tmp_path / "t3.jsonl")
    counts = {name: sum(r["id"].startswith(name) for r in rows) for name in ("web", "code", "math")}
    assert [counts["web"], counts["code"], counts["math"]] == [s["selected"] for s in report["sources"]]
    assert verify_dataset(tmp_path / "t3.jsonl")["parents"][2]["records"] == 10


def test_same_seed_same_mixture_other_seed_other_order(sources, tmp_path):
    config = MixtureConfig(sources, total=300, temperature=2.0, seed=5)
    build_mixture(config, tmp_path / "a.jsonl")
    build_mixture(config, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    build_mixture(MixtureConfig(sources, total=300, temperature=2.0, seed=6), tmp_path / "c.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_rare_tags_are_oversampled_by_their_factor(sources, tmp_path):
    web = sources[:1]
    report = build_mixture(MixtureConfig(web, total=900, upsample=(("rare", 5.0),), seed=0), tmp_path / "up.jsonl")
    # 30 of 900 are tagged; with factor 5 their expected share is 150 / 1020 (each appears 4.41 times on
    # average, 4 or 5 times in fact), so the realized share is within a few records of it.
    assert report["tags"]["rare"]["share_in_sources"] == round(30 / 900, 6)
    assert abs(report["tags"]["rare"]["share_in_mixture"] - 150 / 1020) < 0.01
    rows = _read(tmp_path / "up.jsonl")
    tagged = [r["id"] for r in rows if r.get("tags")]
    assert len(set(tagged)) == 30  # every rare record appears, about 4.4 times each
    assert all(tagged.count(i) in (4, 5) for i in set(tagged))


def test_curriculum_orders_easy_to_hard(sources, tmp_path):
    report = build_mixture(MixtureConfig(sources, order="curriculum", seed=2), tmp_path / "cur.jsonl")
    scores = [r["difficulty"] for r in _read(tmp_path / "cur.jsonl")]
    assert scores == sorted(scores) and report["curriculum"]["sorted"]
    assert len(scores) == 1000


def test_bad_mixtures_are_clear_errors(sources):
    with pytest.raises(InvalidParameterError, match="temperature must be > 0"):
        MixtureConfig(sources, temperature=0)
    with pytest.raises(InvalidParameterError, match="distinct"):
        MixtureConfig((sources[0], sources[0]))
    assert parse_source_spec("web=data/web.jsonl:2.5") == MixtureSource("web", "data/web.jsonl", 2.5)
    assert parse_source_spec("data/code.jsonl") == MixtureSource("code", "data/code.jsonl", None)


def test_apportion_sums_exactly():
    counts = apportion(np.array([1 / 3, 1 / 3, 1 / 3]), 100)
    assert counts.sum() == 100 and sorted(counts.tolist()) == [33, 33, 34]
