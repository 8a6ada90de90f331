"""The issue's ablation, end to end on the default model at a tiny size: LoRA rank 2 vs 8 × 2 seeds on 16 SFT
records, 2 steps each, evaluated on a held-out multiple-choice slice; the MLflow store is read back."""

from __future__ import annotations

import json

import pytest

from llmkit.core.cli import main
from llmkit.lab.registry import Registry
from llmkit.lab.tracking import client

from .conftest import write_facts, write_spec


@pytest.fixture(scope="module")
def ablation(tmp_path_factory, smollm2_path, tracking_uri):
    root = tmp_path_factory.mktemp("ablation")
    data, task = write_facts(root)
    assert main(["data", "manifest", str(data)]) == 0  # the run records the data set's version
    spec = write_spec(
        root / "rank.yaml",
        {
            "name": "lora-rank",
            "base": {
                "train": {
                    "method": "sft",
                    "model": str(smollm2_path),
                    "data": data.name,
                    "max_steps": 2,
                    "batch_size": 4,
                    "learning_rate": 5e-3,
                    "lora_alpha": 16,
                    "max_length": 96,
                },
                "eval": {"tasks": [task.name], "device": "cpu"},
            },
            "factors": {"train.lora_rank": [2, 8]},
            "seeds": [0, 1],
        },
    )
    uri = tracking_uri
    argv = ["experiment", "run", str(spec), "-o", str(root / "out"), "--tracking-uri", uri, "--quiet"]
    assert main(argv) == 0
    return root, uri, json.loads((root / "out" / "state.json").read_text())


def test_every_arm_and_seed_is_tracked_with_params_metrics_and_artifacts(ablation):
    root, uri, state = ablation
    assert sorted(state["units"]) == [
        "lora_rank=2/seed-0",
        "lora_rank=2/seed-1",
        "lora_rank=8/seed-0",
        "lora_rank=8/seed-1",
    ]
    tracking = client(uri)
    experiment = tracking.get_experiment_by_name("lora-rank")
    runs = [r for r in tracking.search_runs([experiment.experiment_id]) if "llmkit.unit" in r.data.tags]
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    manifest = json.loads((root / "facts.jsonl.manifest.json").read_text())
    for run in runs:
        params, tags = run.data.params, run.data.tags
        assert params["train.lora_rank"] in ("2", "8") and params["seed"] == run.data.tags["llmkit.seed"]
        assert params["train.learning_rate"] == "0.005" and params["train.max_steps"] == "2"
        assert tags["llmkit.data_manifest"] == manifest["dataset_hash"]
        assert len(tags.get("llmkit.git_commit", "")) >= 40
        history = tracking.get_metric_history(run.info.run_id, "train.loss")
        assert [m.step for m in history] == [1, 2]
        assert 0.0 <= run.data.metrics["eval.held_out.acc"] <= 1.0
        paths = {
            a.path
            for folder in ("eval", "eval/samples", "train", "model")
            for a in tracking.list_artifacts(run.info.run_id, folder)
        }
        assert {
            "eval/results.json",
            "eval/samples/held_out.jsonl",
            "train/config.yaml",
            "train/metrics.jsonl",
            "train/curves.png",
            "train/facts.jsonl.manifest.json",
            "model/MODEL_CARD.md",
        } <= paths
    versions = Registry(uri).versions("lora-rank")
    assert len(versions) == 4 and {v.phase for v in versions} == {"research"}


def test_the_report_has_seed_cis_paired_tests_and_factor_effects(ablation):
    root, _, _ = ablation
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["metrics"] == ["eval.held_out.acc", "train.loss"]
    loss = report["arms"]["lora_rank=8"]["metrics"]["train.loss"]
    assert loss["seeds"] == 2 and loss["ci_low"] <= loss["mean"] <= loss["ci_high"]
    paired = report["paired"]["lora_rank=8"]["held_out"]
    assert paired["pairs"] == 16 and "exact_p" in paired["mcnemar"]
    [effect] = report["effects"]["train.loss"]
    assert (effect["factor"], effect["from"], effect["to"]) == ("train.lora_rank", "2", "8")
    assert effect["noise_floor_sd"] > 0
    assert (root / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print((root / "out" / "report.md").read_text())
