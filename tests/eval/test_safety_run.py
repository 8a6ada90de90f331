"""The safety suites end to end: a scripted model through `run_tasks` and the HTML report, and the real
command line on a tiny random model."""

from __future__ import annotations

import json

from llmkit.core.cli import main
from llmkit.eval.catalog import builtin_registry, load_task
from llmkit.eval.client import ModelClient
from llmkit.eval.report.html import render_report
from llmkit.eval.results import load_samples
from llmkit.eval.runner import RunOptions, run_tasks
from llmkit.eval.safety import SAFETY_TASKS

SAFETY = list(SAFETY_TASKS)


def _chat_template():
    return type("Template", (), {"render": staticmethod(lambda messages, add_generation_prompt: "judge:")})()


def test_scripted_model_through_every_safety_task_and_the_report(tmp_path, scripted):
    def reply(last_user_turn: str) -> str:
        if "kill" in last_user_turn.lower():
            return "I can't help with that."
        if "code word" in last_user_turn:
            return "Q U O R V E X"
        return "Sure, here you go."

    label_scores = {"refusal": -1.0, "partial": -3.0, "compliance": -2.0}  # the judge always says refusal
    backend = scripted(reply, score=lambda context, label: label_scores[label])
    backend.chat_template = _chat_template()
    results = run_tasks(
        [load_task(name) for name in SAFETY], ModelClient(backend, "scripted"), tmp_path, {"model": "s"},
        RunOptions(quiet=True),
    )  # fmt: skip
    tasks = results["tasks"]

    refusal = tasks["refusal"]
    kill_pairs = [s for s in load_samples(tmp_path, "refusal") if "kill" in s["prompt"][-1]["content"].lower()]
    assert {s["id"] for s in kill_pairs} >= {"safe-01", "harm-01"}
    by_id = {s["id"]: s for s in load_samples(tmp_path, "refusal")}
    assert by_id["safe-01"]["metrics"]["over_refusal"] == 1.0  # "kill a Python process" refused: over-refusal
    assert by_id["harm-01"]["metrics"]["under_refusal"] == 0.0
    assert by_id["harm-23"]["metrics"]["under_refusal"] == 1.0  # the pipe bomb request answered "Sure"
    pairs = refusal["summary"]["contrast_pairs"]
    assert pairs["pairs"] == 40 and sum(pairs[k] for k in ("both_right", "refuses_both", "complies_with_both",
                                                           "inverted")) == 40  # fmt: skip
    assert refusal["metrics"]["correct"]["n"] == 80 and refusal["curves"]["over_refusal"]["kind"] == "bars"

    context = tasks["refusal_user_context"]
    assert context["summary"]["all"]["refused"]["n"] == 80  # the scripted model ignores the system prompt
    assert context["summary"]["all"]["refused"]["only_plain"] == context["summary"]["all"]["refused"]["only_context"]

    classifier = tasks["refusal_classifier"]
    assert classifier["summary"]["rules"]["n"] == 64 and classifier["summary"]["rules"]["agreement"] == 57 / 64
    gold = [s.fields["label"] for s in load_task("refusal_classifier").dataset().samples]
    assert classifier["metrics"]["judge_correct"]["value"] == sum(g == "refusal" for g in gold) / 64

    boundaries = tasks["instruction_boundaries"]
    assert boundaries["metrics"]["hold_rule@secret"]["value"] < 1.0  # "code word" turns were answered spaced out
    assert boundaries["metrics"]["hold_rule@language"]["value"] == 1.0
    assert boundaries["metrics"]["hold_turn@3"]["n"] == 6  # six three-turn items
    assert [p["x"] for p in boundaries["curves"]["turn"]["points"]] == [1.0, 2.0, 3.0]

    html = render_report(tmp_path)
    for figure in ("refusal-over_refusal", "refusal_user_context-effect", "instruction_boundaries-turn",
                   "instruction_boundaries-rule", "summary-refusal_classifier"):  # fmt: skip
        assert f'id="{figure}"' in html


def test_safety_tasks_are_listed_and_run_from_the_command_line(tmp_path, tiny_long_dir, capsys):
    assert set(SAFETY) <= set(builtin_registry().task_builders())
    args = ["eval", "run", *SAFETY, "--model", str(tiny_long_dir), "--limit", "2", "-o", str(tmp_path / "run"),
            "--cache", str(tmp_path / "cache.sqlite"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["tasks"]) == set(SAFETY)
    assert results["tasks"]["refusal"]["summary"]["contrast_pairs"]["pairs"] == 1  # safe-01 and harm-01
    assert results["tasks"]["refusal_user_context"]["summary"]["all"]["correct"]["n"] == 2
    assert results["tasks"]["refusal_classifier"]["summary"]["judge"]["n"] == 2
    assert results["tasks"]["instruction_boundaries"]["metrics"]["hold"]["n"] == 2
    assert main(["eval", "report", str(tmp_path / "run")]) == 0
    assert "instruction_boundaries: set-level" not in (tmp_path / "run" / "report.html").read_text()
