"""The Ray Data executor on a local Ray instance gives the same results as the inline executor."""

from __future__ import annotations

import json

import pytest

from llmkit.train.pipeline.dedup import DedupConfig, deduplicate_file
from llmkit.train.pipeline.execution import InlineExecutor, RayDataExecutor

from .corpus import build_corpus

ray = pytest.importorskip("ray", reason="ray is optional: pip install 'llmkit-train[ray]'")


def test_dedup_on_ray_data_equals_inline(tmp_path):
    corpus = build_corpus(originals=200, exact=20, near=20, negatives=10, seed=4)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus.texts))
    outputs = {}
    executors = {"inline": InlineExecutor(), "ray": RayDataExecutor("local", window=4)}
    try:
        for name, executor in executors.items():
            summary = deduplicate_file(
                source,
                tmp_path / f"{name}.jsonl",
                tmp_path / f"{name}.r.jsonl",
                DedupConfig(),
                executor,
                batch_size=37,
                quiet=True,
            )
            outputs[name] = ((tmp_path / f"{name}.jsonl").read_text(), (tmp_path / f"{name}.r.jsonl").read_text())
            assert summary.dropped["exact"] == 20 and summary.dropped["near"] == 20
    finally:
        ray.shutdown()
    assert outputs["ray"] == outputs["inline"]
