"""`--device` on the eval commands that load a model: where the local backend loads it, and clear refusals."""

from __future__ import annotations

import json

import pytest
import torch

from llmkit.core.cli import build_parser, main


@pytest.fixture
def toy_task(tmp_path):
    rows = [
        {"id": f"t{i}", "q": f"The quick brown {w}", "choices": ["fox", "dog"], "label": 0} for i, w in enumerate("ab")
    ]
    (tmp_path / "toy.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "toy.yaml").write_text(
        "name: toy\ndataset: {source: file, path: toy.jsonl, id: id, target: label, choices: choices}\n"
        "prompt: {template: '{{ q }}'}\nsolver: {type: multiple_choice}\n"
    )
    return tmp_path / "toy.yaml"


def eval_run(task, model, tmp_path, *extra):
    return main(["eval", "run", str(task), "--model", str(model), "--output", str(tmp_path / "run"), "--no-cache", "--quiet", *extra])  # fmt: skip


def test_eval_run_loads_on_the_device_asked_and_logs_it(toy_task, tiny_model_dir, tmp_path, capsys):
    assert eval_run(toy_task, tiny_model_dir, tmp_path, "--device", "cpu") == 0
    assert "llmkit: device cpu (" in capsys.readouterr().err


def test_eval_run_refuses_cuda_without_it_before_loading(toy_task, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)  # a +cpu torch wherever this runs
    assert eval_run(toy_task, tiny_model_dir, tmp_path, "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert err.startswith("llmkit: error: this torch build has no CUDA (torch ")
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "openai", "--device", "cuda"], "--device cuda applies to the backends that load the model here"),
        (["--backend-option", "device=cpu"], "give the device with --device, not as a backend option"),
    ],
)
def test_device_where_it_cannot_apply_is_refused(extra, message, toy_task, tiny_model_dir, tmp_path, capsys):
    assert eval_run(toy_task, tiny_model_dir, tmp_path, *extra) == 2
    assert f"llmkit: error: {message}" in capsys.readouterr().err


def test_judge_and_cost_take_the_flag(monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    assert main(["cost", "--measure", "--device", "cuda", "--ttft-ms", "1"]) == 2
    assert "llmkit: error: this torch build has no CUDA" in capsys.readouterr().err
    parser, _ = build_parser()
    judge = parser.parse_args(["eval", "judge", "a", "b", "--task", "t", "--judge", "reference:x", "--device", "cpu"])
    assert judge.device == "cpu" and parser.parse_args(["cost"]).device == "auto"
