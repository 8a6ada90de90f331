"""`llmkit eval gate`: a planted regression fails (task and slice), a no-op change passes, JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from llmkit.core.cli import main
from llmkit.eval.client import ModelClient
from llmkit.eval.data import Dataset, Sample
from llmkit.eval.errors import EvalError
from llmkit.eval.gate import detectable_drop, parse_gates, run_gates
from llmkit.eval.prompting import PromptFormat
from llmkit.eval.results import load_samples
from llmkit.eval.runner import RunOptions, run_tasks
from llmkit.eval.scoring.scorers import MatchScorer
from llmkit.eval.solvers import Generate
from llmkit.eval.tasks import Task

ITEMS = 200
REGRESSED = set(range(0, 100, 4))  # 25 geography items the candidate gets wrong


def _task() -> Task:
    samples = [
        Sample(f"s{i}", {"question": f"What is {i} + {i}?", "tags": ["geo" if i < 100 else "math"]}, str(2 * i))
        for i in range(ITEMS)
    ]
    return Task(
        "adding",
        lambda: Dataset("adding", samples, {"source": "test"}),
        PromptFormat(),
        Generate(max_tokens=8),
        MatchScorer("last_number", "number"),
        primary_metric="exact_match",
    )


def _number(prompt: str) -> int:
    return int(prompt.split()[2])


def _baseline(prompt: str) -> str:  # right on every item but one in ten
    i = _number(prompt)
    return f"The answer is {2 * i + (i % 10 == 9)}"


def _regressed(prompt: str) -> str:
    i = _number(prompt)
    return f"The answer is {2 * i + 1}" if i in REGRESSED else _baseline(prompt)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, scripted):
    root = tmp_path_factory.mktemp("gate-runs")
    for name, reply in (("baseline", _baseline), ("noop", _baseline), ("regressed", _regressed)):
        run_tasks([_task()], ModelClient(scripted(reply), name), root / name, {"model": name}, RunOptions(quiet=True))
    return root


GATES = """
minimum_detectable_effect: 0.1
gates:
  - task: adding
    min: 0.8
  - task: adding
    slice: geo
  - task: adding
    slice: math
"""


def _gate(runs, candidate, tmp_path):
    (tmp_path / "gates.yaml").write_text(GATES)
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    argv = ["eval", "gate", str(tmp_path / "gates.yaml"), "--candidate", str(runs / candidate)]
    argv += ["--baseline", str(runs / "baseline"), "--junit", str(junit), "--summary", str(summary)]
    return main(argv), ET.parse(junit).getroot(), summary.read_text()


def test_samples_carry_their_tags(runs):
    records = load_samples(runs / "baseline", "adding")
    assert records[0]["tags"] == ["geo"] and records[150]["tags"] == ["math"]


def test_a_no_op_change_passes(runs, tmp_path):
    code, junit, summary = _gate(runs, "noop", tmp_path)
    assert code == 0
    assert junit.get("tests") == "3" and junit.get("failures") == "0"
    assert not junit.findall(".//failure")
    assert summary.startswith("# Release gate PASSED")


def test_a_planted_regression_fails_with_the_flipped_items(runs, tmp_path):
    code, junit, summary = _gate(runs, "regressed", tmp_path)
    assert code == 1
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    assert set(cases) == {"adding", "adding[geo]", "adding[math]"}
    assert junit.get("failures") == "2"
    overall = cases["adding"].find("failure").get("message")
    assert "dropped 0.1250" in overall and "25 items regressed, 0 improved" in overall
    assert "exact_match 0.7750 is below the threshold 0.8" in overall  # 0.9 - 0.125
    assert "dropped 0.2500" in cases["adding[geo]"].find("failure").get("message")
    assert cases["adding[math]"].find("failure") is None
    flipped = sorted(f"s{i}" for i in REGRESSED)
    assert sorted(cases["adding[geo]"].find("failure").text.split("regressed items: ")[1].split(", ")) == flipped
    assert "# Release gate FAILED" in summary and "adding[geo] regressions (25)" in summary


def test_threshold_and_underpowered_rules(runs):
    gates = parse_gates({"gates": [{"task": "adding", "min": 0.8, "no_regression": False}]})
    [outcome] = run_gates(gates, runs / "regressed", None)
    assert not outcome.passed and outcome.reasons == ["exact_match 0.7750 is below the threshold 0.8"]
    gates = parse_gates({"minimum_detectable_effect": 0.02, "gates": [{"task": "adding", "slice": "math"}]})
    [outcome] = run_gates(gates, runs / "noop", runs / "baseline")
    assert not outcome.passed and outcome.reasons[0].startswith("underpowered: 100 items detect a drop of 0.0785")


def test_detectable_drop_follows_the_normal_approximation():
    import numpy as np

    assert detectable_drop(np.zeros(100), True, 0.05, 0.8) == pytest.approx(2.8016**2 / 100, rel=1e-3)
    diffs = np.array([-1.0] * 20 + [0.0] * 80)  # 20% discordant
    assert detectable_drop(diffs, True, 0.05, 0.8) == pytest.approx(2.8016 * (0.2 / 100) ** 0.5, rel=1e-3)


def test_bad_gate_files_are_refused(tmp_path):
    with pytest.raises(EvalError, match=r"gates\[0\]: unknown key\(s\) treshold"):
        parse_gates({"gates": [{"task": "adding", "treshold": 0.5}]})
    with pytest.raises(EvalError, match="checks nothing"):
        parse_gates({"gates": [{"task": "adding", "no_regression": False}]})
    with pytest.raises(EvalError, match="not an eval run directory"):
        (tmp_path / "g.yaml").write_text("gates: [{task: adding}]\n")
        from llmkit.core.cli import build_parser

        parser, _ = build_parser()
        args = parser.parse_args(["eval", "gate", str(tmp_path / "g.yaml"), "--candidate", str(tmp_path / "nope")])
        args.func(args)


def test_models_are_evaluated_on_the_gate_files_tasks(tmp_path, tiny_model_dir):
    """--candidate/--baseline given as models: the gate runs its `tasks` on each, then decides."""
    records = [
        {"id": f"q{i}", "question": f"{i} plus one is", "choices": [str(i + 1), str(i + 7)], "answer": 0}
        for i in range(8)
    ]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "task.yaml").write_text(
        "name: plus_one\n"
        f"dataset: {{source: file, path: {tmp_path / 'items.jsonl'}, id: id, target: answer, choices: choices}}\n"
        'prompt: {template: "{{ question }}"}\nsolver: {type: multiple_choice}\nscorer: {type: choice}\n'
    )
    (tmp_path / "gates.yaml").write_text(
        f"tasks: [{tmp_path / 'task.yaml'}]\nminimum_detectable_effect: 1.0\ngates: [{{task: plus_one}}]\n"
    )
    argv = ["eval", "gate", str(tmp_path / "gates.yaml"), "--candidate", str(tiny_model_dir)]
    argv += ["--baseline", str(tiny_model_dir), "--output", str(tmp_path / "runs"), "--device", "cpu"]
    assert main(argv) == 0  # the same model on both sides: nothing flips
    assert len(load_samples(tmp_path / "runs" / "candidate", "plus_one")) == 8
    assert (tmp_path / "runs" / "baseline" / "results.json").is_file()
