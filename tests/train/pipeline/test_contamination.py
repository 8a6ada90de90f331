"""Contamination: planted eval items inside a training set are found, clean ones are not."""

from __future__ import annotations

import json
import random

import pytest

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.train.errors import DataError
from llmkit.train.pipeline.contamination import (
    ContaminationConfig,
    EvalItem,
    check_contamination,
    check_records,
    load_eval_sources,
)
from llmkit.train.pipeline.versioning import verify_dataset

from .corpus import vocabulary
from .paraphrases import PARAPHRASE_PAIRS


def _eval_items(count: int, rng: random.Random) -> list[EvalItem]:
    vocab = vocabulary(2000, rng)
    return [EvalItem("toy-eval", f"q{i}", " ".join(rng.choices(vocab, k=rng.randint(20, 40)))) for i in range(count)]


@pytest.fixture(scope="module")
def planted():
    """40 eval items; a 300-record training set holds 10 of them verbatim or embedded in longer text."""
    rng = random.Random(3)
    items = _eval_items(40, rng)
    vocab = vocabulary(2500, random.Random(4))
    training = [{"text": " ".join(rng.choices(vocab, k=50))} for _ in range(300)]
    contaminated = {}
    for number, item in enumerate(items[:10]):
        text = item.text.upper() + "?" if number % 2 else f"Q: {' '.join(rng.choices(vocab, k=9))} {item.text} A: yes"
        position = rng.randrange(len(training))
        training.insert(
            position, {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]}
        )
        contaminated[item.id] = text
    return items, training, set(contaminated)


def test_planted_items_found_and_clean_items_not(planted):
    items, training, contaminated = planted
    rows = check_records(training, items, ContaminationConfig())
    assert {r["id"] for r in rows if r["contaminated"]} == contaminated
    for row in rows:
        if row["id"] in contaminated:
            assert row["overlap"] == 1.0 and row["training_matches"] == 1 and row["contaminated_by"] == ["ngram"]
        else:
            assert row["matched_ngrams"] == 0 and row["training_examples"] == []


def test_a_single_shared_13_gram_counts_and_shorter_items_count_whole():
    items = [
        EvalItem("e", "long", " ".join(f"w{i}" for i in range(30))),
        EvalItem("e", "short", "what is the capital of peru"),
    ]
    training = [
        {"text": "prefix " + " ".join(f"w{i}" for i in range(10, 23)) + " suffix"},  # exactly 13 shared words
        {"text": "Trivia: What is the capital of Peru? Lima."},
    ]
    rows = {r["id"]: r for r in check_records(training, items, ContaminationConfig())}
    assert rows["long"]["matched_ngrams"] == 1 and rows["long"]["overlap"] == round(1 / 18, 4)
    assert rows["short"]["contaminated"] and rows["short"]["ngrams"] == 1
    twelve = [{"text": " ".join(f"w{i}" for i in range(10, 22))}]  # 12 words: below the n-gram
    assert not any(r["contaminated"] for r in check_records(twelve, items[:1], ContaminationConfig()))


def test_semantic_near_matches_find_paraphrased_eval_items():
    items = [EvalItem("para", str(i), a) for i, (a, _) in enumerate(PARAPHRASE_PAIRS)]
    training = [{"prompt": b} for _, b in PARAPHRASE_PAIRS[:6]] + [{"prompt": "Tell me about volcanoes."}]
    rows = check_records(training, items, ContaminationConfig(semantic=True, semantic_threshold=0.75))
    assert {r["id"] for r in rows if "semantic" in r["contaminated_by"]} == {str(i) for i in range(6)}
    assert not any("ngram" in r["contaminated_by"] for r in rows)  # paraphrases share no 13-gram
    assert rows[0]["semantic_match"] == "0"


class ToyBenchmark:
    @hookimpl
    def llmkit_register_datasets(self, register):
        register(
            "toy-benchmark", lambda: iter([{"id": "t0", "text": "Name the tallest mountain on the planet Earth."}])
        )


def test_registered_datasets_are_checked_through_the_plugin_hook(tmp_path):
    register_plugin(ToyBenchmark(), "toy-benchmark-plugin")
    try:
        items = load_eval_sources(["known"])
        assert ("toy-benchmark", "t0") in {(i.source, i.id) for i in items}
        training = tmp_path / "train.jsonl"
        rows = [{"text": "Quiz: name the tallest mountain on the planet earth"}, {"text": "unrelated text"}]
        training.write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = check_contamination(
            training,
            [i for i in items if i.source == "toy-benchmark"],
            tmp_path / "report.jsonl",
            ContaminationConfig(),
            decontaminated=tmp_path / "clean.jsonl",
            quiet=True,
        )
    finally:
        unregister_plugin("toy-benchmark-plugin")
    assert summary["sources"]["toy-benchmark"] == {
        "items": 1,
        "ngram": 1,
        "semantic": 0,
        "contaminated": 1,
        "fraction": 1.0,
    }
    assert summary["training_records_touching_eval"] == 1
    assert [json.loads(line)["text"] for line in (tmp_path / "clean.jsonl").read_text().splitlines()] == [
        "unrelated text"
    ]
    assert verify_dataset(tmp_path / "clean.jsonl")["parents"][0]["records"] == 2
    with pytest.raises(DataError, match="no dataset named 'nope' is registered"):
        load_eval_sources(["nope"])
