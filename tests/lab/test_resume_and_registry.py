"""A killed experiment resumes at the unfinished unit (tiny model); model versions move through the phases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmkit.core.cli import main
from llmkit.lab.errors import LabError
from llmkit.lab.registry import Registry
from llmkit.lab.tracking import client

from .conftest import write_facts, write_spec


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, tiny_model_dir, tracking_uri):
    root = tmp_path_factory.mktemp("resume")
    data, task = write_facts(root)
    spec = write_spec(
        root / "spec.yaml",
        {
            "name": "tiny-rank",
            "base": {
                "train": {
                    "model": str(tiny_model_dir),
                    "data": data.name,
                    "max_steps": 2,
                    "batch_size": 4,
                    "max_length": 96,
                    "learning_rate": 1e-3,
                },
                "eval": {"tasks": [task.name], "device": "cpu"},
            },
            "factors": {"train.lora_rank": [2, 4]},
            "seeds": [0],
        },
    )
    uri = tracking_uri
    argv = ["experiment", "run", str(spec), "-o", str(root / "out"), "--tracking-uri", uri, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from llmkit.core.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, start_new_session=True)
    second = root / "out" / "arms" / "lora_rank=4" / "seed-0"
    try:
        deadline = time.monotonic() + 240
        while not second.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.exists() and process.poll() is None, "the second arm never started"
        first = json.loads((root / "out" / "state.json").read_text())
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert main(argv) == 0
    return root, uri, first, json.loads((root / "out" / "state.json").read_text())


def test_a_killed_experiment_continues_from_the_last_finished_arm(resumed):
    root, uri, before, after = resumed
    assert list(before["units"]) == ["lora_rank=2/seed-0"]
    assert list(after["units"]) == ["lora_rank=2/seed-0", "lora_rank=4/seed-0"]
    assert after["units"]["lora_rank=2/seed-0"]["run_id"] == before["units"]["lora_rank=2/seed-0"]["run_id"]
    tracking = client(uri)
    experiment = tracking.get_experiment_by_name("tiny-rank")
    runs = tracking.search_runs([experiment.experiment_id])
    statuses = sorted((r.data.tags.get("llmkit.unit", "report"), r.info.status) for r in runs)
    assert statuses == [
        ("lora_rank=2/seed-0", "FINISHED"),
        ("lora_rank=4/seed-0", "FINISHED"),
        ("lora_rank=4/seed-0", "KILLED"),  # the run the kill interrupted
        ("report", "FINISHED"),
    ]
    assert (root / "out" / "report.md").read_text().startswith("# Experiment tiny-rank")


def test_versions_move_through_the_phases_and_deployment_needs_a_passed_gate(resumed):
    uri = resumed[1]
    registry = Registry(uri)
    versions = registry.versions("tiny-rank")
    assert [(v.version, v.phase) for v in versions] == [("1", "research"), ("2", "research")]
    assert versions[0].source.endswith("lora_rank=2/seed-0/train/final/model")
    text = (Path(versions[0].source) / "MODEL_CARD.md").read_text()
    assert "- base model:" in text and "## Training curves" in text and "## Evaluation" in text
    with pytest.raises(LabError, match="in research; it can move to evaluation only"):
        registry.promote("tiny-rank", "1", "deployment")
    assert main(["registry", "promote", "tiny-rank", "1", "evaluation", "--tracking-uri", uri]) == 0
    with pytest.raises(LabError, match="has no passed release gate"):
        registry.promote("tiny-rank", "1", "deployment")
    registry.record_gate("tiny-rank", "1", True, "gates.yaml vs base")
    assert registry.promote("tiny-rank", "1", "deployment").phase == "deployment"
    assert registry.promote("tiny-rank", "1", "maintenance").phase == "maintenance"
    with pytest.raises(LabError, match="unknown phase 'production'"):
        registry.promote("tiny-rank", "2", "production")


def test_a_gate_on_a_version_is_recorded_on_the_version_and_its_card(resumed, tmp_path):
    root, uri, _, _ = resumed
    source = Registry(uri).version("tiny-rank", "2").source
    (tmp_path / "gates.yaml").write_text(
        f"tasks: [{root / 'held_out.yaml'}]\nminimum_detectable_effect: 1.0\ngates: [{{task: held_out}}]\n"
    )
    argv = ["registry", "gate", "tiny-rank", "2", str(tmp_path / "gates.yaml"), "--baseline", source]
    argv += ["--output", str(tmp_path / "gate"), "--junit", str(tmp_path / "gate.xml"), "--tracking-uri", uri]
    assert main(argv) == 0
    assert Registry(uri).version("tiny-rank", "2").gate == "passed"
    card = (Path(source) / "MODEL_CARD.md").read_text()
    assert "## Gate results\n\n# Release gate PASSED" in card and "## Config" in card
