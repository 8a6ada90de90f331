"""Dedup on a built corpus with planted exact, near and paraphrase duplicates: stated precision and recall."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from llmkit.train.pipeline.dedup import DedupConfig, deduplicate_file, deduplicate_records
from llmkit.train.pipeline.dedup.features import Featurizer
from llmkit.train.pipeline.dedup.lsh import BandIndex
from llmkit.train.pipeline.dedup.minhash import exact_jaccard
from llmkit.train.pipeline.dedup.run import Deduplicator
from llmkit.train.pipeline.embedders import HashingEmbedder
from llmkit.train.pipeline.execution import InlineExecutor, ProcessPoolBatchExecutor
from llmkit.train.pipeline.versioning import verify_dataset

from .corpus import build_corpus, edited, precision_recall, shingles, vocabulary
from .paraphrases import PARAPHRASE_PAIRS, UNRELATED


@pytest.fixture(scope="module")
def corpus():
    return build_corpus()


def test_exact_and_near_duplicates_found_with_full_precision_and_recall(corpus):
    records = [{"text": t} for t in corpus.texts]
    kept, dropped = deduplicate_records(records, DedupConfig())
    by_index = {d.index: d for d in dropped}
    exact = {i for i, d in by_index.items() if d.stage == "exact"}
    near = {i for i, d in by_index.items() if d.stage == "near"}
    # Measured on this corpus (seed 0; 600 originals, 60 exact, 80 near, 40 hard negatives): 1.0 / 1.0 each.
    assert precision_recall(exact, corpus.planted("exact")) == (1.0, 1.0)
    assert precision_recall(near, corpus.planted("near")) == (1.0, 1.0)
    assert not corpus.planted("negative") & set(by_index)  # heavily edited copies are kept
    for index in exact | near:  # each names its original as representative, with a similarity
        assert by_index[index].representative == corpus.duplicate_of[index]
    assert all(0.7 <= by_index[i].similarity <= 1.0 for i in near)
    assert len(kept) == len(records) - len(dropped)


def test_exact_only_misses_near_duplicates(corpus):
    _, dropped = deduplicate_records([{"text": t} for t in corpus.texts], DedupConfig(near=False))
    assert {d.index for d in dropped} == corpus.planted("exact")


def test_band_index_merges_lose_no_candidates(corpus):
    """Merging recent band keys into the sorted arrays mid-batch once hid them from the rest of that batch
    (recall 0.89 here with a merge every 50 kept records; 0.975 on the 1M benchmark); merges now wait for
    the batch to end."""
    config = DedupConfig()
    featurize = Featurizer(config)
    batches = [
        (
            first,
            [(f"record {first + i}", json.dumps({"text": t})) for i, t in enumerate(corpus.texts[first : first + 97])],
        )
        for first in range(0, len(corpus.texts), 97)
    ]
    deduplicator = Deduplicator(config)
    deduplicator.band_index = BandIndex(deduplicator.bands, merge_every=50)
    near = {
        d.index
        for _, decisions in deduplicator.run(map(featurize, batches))
        for d in decisions
        if d is not None and d.stage == "near"
    }
    assert precision_recall(near, corpus.planted("near")) == (1.0, 1.0)


def test_semantic_stage_finds_paraphrases_with_minilm():
    """MiniLM cosine of the 12 pairs: 0.78-0.97; of any two unrelated sentences at most 0.50 (measured)."""
    texts = [a for a, _ in PARAPHRASE_PAIRS] + UNRELATED + [b for _, b in PARAPHRASE_PAIRS]
    expected = set(range(len(PARAPHRASE_PAIRS) + len(UNRELATED), len(texts)))
    config = DedupConfig(semantic=True, semantic_threshold=0.75)
    _, dropped = deduplicate_records([{"prompt": t} for t in texts], config, batch_size=7)
    found = {d.index for d in dropped if d.stage == "semantic"}
    assert precision_recall(found, expected) == (1.0, 1.0)
    for d in dropped:
        assert texts[d.representative] == PARAPHRASE_PAIRS[d.index - min(expected)][0]
    strict = DedupConfig(semantic=True, semantic_threshold=0.85)
    _, dropped = deduplicate_records([{"prompt": t} for t in texts], strict)
    precision, recall = precision_recall({d.index for d in dropped}, expected)
    assert precision == 1.0 and recall == 0.75  # 9 of the 12 pairs are at or above 0.85


def test_file_mode_with_a_process_pool_matches_inline(corpus, tmp_path):
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(corpus.texts)))
    results = {}
    for name, executor in (("inline", InlineExecutor()), ("pool", ProcessPoolBatchExecutor(2))):
        with executor:
            summary = deduplicate_file(
                source,
                tmp_path / f"{name}.jsonl",
                tmp_path / f"{name}.report.jsonl",
                DedupConfig(),
                executor,
                batch_size=97,
                quiet=True,
            )
        results[name] = (
            (tmp_path / f"{name}.jsonl").read_text(),
            (tmp_path / f"{name}.report.jsonl").read_text(),
        )
        assert summary.records == len(corpus.texts)
        assert summary.dropped["exact"] == 60 and summary.dropped["near"] == 80
    assert results["inline"] == results["pool"]
    manifest = verify_dataset(tmp_path / "pool.jsonl")
    assert manifest["records"] == len(corpus.texts) - 140
    assert manifest["pipeline"]["stage"] == "dedup" and manifest["pipeline"]["config"]["near_threshold"] == 0.7
    assert manifest["parents"][0]["records"] == len(corpus.texts)
    row = json.loads(results["pool"][1].splitlines()[0])
    assert row["id"].startswith("doc-") and row["representative_id"].startswith("doc-")


def test_language_model_embedder_on_a_tiny_model(tiny_model_dir):
    from llmkit.train.pipeline.embedders import open_embedder

    embedder = open_embedder(f"model:{tiny_model_dir}")
    texts = ["same words here", "same words here", "something else entirely"]
    _, dropped = deduplicate_records(
        [{"text": t} for t in texts],
        DedupConfig(exact=False, near=False, semantic=True, semantic_threshold=0.999),
        embedder,
    )
    assert [(d.index, d.representative, d.stage) for d in dropped] == [(1, 0, "semantic")]


def test_hashing_embedder_catches_reordered_words():
    texts = ["alpha beta gamma delta epsilon", "epsilon delta gamma beta alpha", "zeta eta theta"]
    config = DedupConfig(near=False, semantic=True, semantic_threshold=0.5)
    _, dropped = deduplicate_records([{"text": t} for t in texts], config, HashingEmbedder())
    assert [d.index for d in dropped] == [1]


def _copies_near_the_threshold(seed: int = 3) -> tuple[list[str], dict[int, float]]:
    """300 random originals and 120 copies edited to a shingle Jaccard in [0.6, 1.0) with their original
    (half of them in [0.7, 0.8), where a 128-permutation estimate (s.e. ~0.035) often reads >= 0.8)."""
    rng = random.Random(seed)
    vocab = vocabulary(3000, rng)
    texts = [" ".join(rng.choices(vocab, k=rng.randint(60, 90))) for _ in range(300)]
    copies: dict[int, float] = {}
    for number, source in enumerate(rng.sample(range(300), 120)):
        low, high = (0.7, 0.8) if number % 2 else (0.6, 1.0)
        while True:
            variant = edited(texts[source], rng.randint(1, 12), vocab, rng)
            similarity = exact_jaccard(shingles(variant), shingles(texts[source]))
            if low <= similarity < high:
                break
        copies[len(texts)] = similarity
        texts.append(variant)
    return texts, copies


def test_exact_verification_drops_the_false_positives_the_estimate_admits():
    """At threshold 0.8 the signature estimate admits copies whose true Jaccard is below 0.8; checking
    each LSH candidate's exact shingle-set Jaccard removes them without losing any true duplicate."""
    texts, copies = _copies_near_the_threshold()
    truth = {i for i, s in copies.items() if s >= 0.8}
    records = [{"text": t} for t in texts]
    found = {}
    for mode in ("estimate", "exact"):
        config = DedupConfig(exact=False, near_threshold=0.8, near_verification=mode)
        _, dropped = deduplicate_records(records, config, batch_size=64)
        found[mode] = {d.index: d for d in dropped}
    estimate_false = set(found["estimate"]) - truth
    assert estimate_false, "the corpus must contain a false positive of the estimate for this test to mean much"
    assert all(i in copies and copies[i] < 0.8 for i in estimate_false)  # near misses, never unrelated documents
    precision, recall = precision_recall(set(found["exact"]), truth)
    _, estimate_recall = precision_recall(set(found["estimate"]), truth)
    assert precision == 1.0 and not estimate_false & set(found["exact"])
    assert recall == 1.0 and recall >= estimate_recall
    for index, dropped in found["exact"].items():  # the reported similarity is the exact Jaccard
        assert dropped.similarity == round(copies[index], 4)


def test_exact_verification_keeps_shingle_sets_of_kept_records_only():
    texts, _ = _copies_near_the_threshold()
    config = DedupConfig(exact=False, near_threshold=0.8)
    deduplicator = Deduplicator(config)
    featurize = Featurizer(config)
    batch = featurize(batch_of(texts))
    decisions = deduplicator.process(batch)
    kept = [i for i, d in enumerate(decisions) if d is None]
    assert deduplicator.shingle_sets.count == len(kept) == deduplicator.signatures.count
    for row in (0, len(kept) // 2, len(kept) - 1):
        assert np.array_equal(deduplicator.shingle_sets.get(row), batch.shingles[kept[row]])
    estimate_only = Deduplicator(DedupConfig(exact=False, near_verification="estimate"))
    assert estimate_only.shingle_sets is None
    assert Featurizer(DedupConfig(near_verification="estimate"))(batch_of(texts[:3])).shingles is None


def batch_of(texts: list[str]) -> tuple[int, list[tuple[str, str]]]:
    return 0, [(f"record {i}", json.dumps({"text": t})) for i, t in enumerate(texts)]


def test_near_verification_must_be_known():
    with pytest.raises(ValueError, match="near_verification must be one of exact, estimate"):
        DedupConfig(near_verification="sometimes")


def test_cli_near_verification_flag(tmp_path, capsys):
    from llmkit.core.cli import main

    texts, copies = _copies_near_the_threshold()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    dropped = {}
    for mode in ("exact", "estimate"):
        out, report = tmp_path / f"{mode}.jsonl", tmp_path / f"{mode}.report.jsonl"
        argv = ["data", "dedup", str(source), "-o", str(out), "--report", str(report), "--near-threshold", "0.8"]
        assert main([*argv, "--near-verification", mode, "--no-exact", "--workers", "1", "--quiet"]) == 0
        capsys.readouterr()
        assert verify_dataset(out)["pipeline"]["config"]["near_verification"] == mode
        dropped[mode] = {json.loads(line)["index"] for line in report.read_text().splitlines()}
    assert dropped["exact"] == {i for i, s in copies.items() if s >= 0.8}
    assert dropped["estimate"] - dropped["exact"]  # the estimate's false positives
    with pytest.raises(SystemExit):
        main(["data", "dedup", str(source), "-o", "o.jsonl", "--report", "r.jsonl", "--near-verification", "maybe"])
    assert "invalid choice: 'maybe'" in capsys.readouterr().err
