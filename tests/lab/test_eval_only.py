"""An experiment with no training: two models as the arms of an eval-only spec, paired on the same items."""

from __future__ import annotations

import json

from llmkit.core.cli import main
from llmkit.core.testing import write_tiny_model
from llmkit.lab.tracking import client

from .conftest import write_facts, write_spec


def test_an_eval_only_experiment_compares_models_item_by_item(tmp_path, tracking_uri):
    _, task = write_facts(tmp_path)
    models = [str(write_tiny_model(tmp_path / f"model-{seed}", seed=seed)) for seed in (1, 2)]
    spec = write_spec(
        tmp_path / "models.yaml",
        {
            "name": "two-models",
            "base": {"eval": {"tasks": [task.name], "device": "cpu"}},
            "factors": {"eval.model": models},
            "seeds": [0],
            "arms": [
                {"name": "one", "set": {"eval.model": models[0]}},
                {"name": "two", "set": {"eval.model": models[1]}},
            ],
        },
    )
    uri = tracking_uri
    assert main(["experiment", "run", str(spec), "-o", str(tmp_path / "out"), "--tracking-uri", uri, "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["metrics"] == ["eval.held_out.acc"]
    assert report["paired"]["two"]["held_out"]["pairs"] == 8
    runs = client(uri).search_runs([client(uri).get_experiment_by_name("two-models").experiment_id])
    params = {r.data.tags.get("llmkit.arm"): r.data.params.get("eval.model") for r in runs}
    assert params == {"one": models[0], "two": models[1], None: None}  # None: the report run
