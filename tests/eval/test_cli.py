"""`llmkit eval ...` and `llmkit cost` through the real command line, on a tiny model."""

from __future__ import annotations

import json

import pytest

from llmkit.core.cli import main
from llmkit.core.plugins import registry
from llmkit.core.verifiers import verify


@pytest.fixture
def toy_task(tmp_path):
    rows = [
        {"id": f"t{i}", "q": f"The quick brown {w}", "choices": ["fox", "dog", "cat"], "label": 0}
        for i, w in enumerate(["a", "b", "c"])
    ]
    (tmp_path / "toy.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "toy.yaml").write_text(
        "name: toy\ndataset: {source: file, path: toy.jsonl, id: id, target: label, choices: choices}\n"
        "prompt: {template: '{{ q }}'}\nsolver: {type: multiple_choice}\n"
    )
    return tmp_path / "toy.yaml"


def test_run_compare_report_end_to_end(tmp_path, toy_task, tiny_model_dir, capsys):
    cache = str(tmp_path / "cache.sqlite")
    for name in ("a", "b"):
        code = main(
            [
                "eval",
                "run",
                str(toy_task),
                "--model",
                str(tiny_model_dir),
                "--output",
                str(tmp_path / name),
                "--cache",
                cache,
                "--quiet",
            ]
        )
        assert code == 0
    out = capsys.readouterr().out
    assert "toy" in out and "acc" in out and "from cache" in out
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["usage"]["cached"] == results["usage"]["requests"] == 9
    assert results["tasks"]["toy"]["dataset"]["source"] == "file"
    assert (
        main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "cmp.md")]) == 0
    )
    assert "| toy | acc | 3 |" in (tmp_path / "cmp.md").read_text()
    assert main(["eval", "report", str(tmp_path / "b")]) == 0 and (tmp_path / "b" / "report.html").is_file()


def test_judge_command_on_two_runs(tmp_path, tiny_long_dir, capsys):
    rows = [{"id": f"g{i}", "question": f"Name a color number {i}."} for i in range(2)]
    (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "g.yaml").write_text(
        "name: colors\ndataset: {source: file, path: g.jsonl, id: id}\nprompt: {template: '{{ question }}', chat: true}\n"
        "solver: {type: generate, max_tokens: 6}\n"
    )
    cache = str(tmp_path / "cache.sqlite")
    for name, seed in (("a", "0"), ("b", "1")):
        assert (
            main(
                [
                    "eval",
                    "run",
                    str(tmp_path / "g.yaml"),
                    "--model",
                    str(tiny_long_dir),
                    "-o",
                    str(tmp_path / name),
                    "--cache",
                    cache,
                    "--seed",
                    seed,
                    "--quiet",
                ]
            )
            == 0
        )
    (tmp_path / "humans.jsonl").write_text('{"id": "g0", "label": "x"}\n{"id": "g1", "label": "tie"}\n')
    code = main(["eval", "judge", str(tmp_path / "a"), str(tmp_path / "b"), "--task", "colors", "--judge", f"reference:{tiny_long_dir}",
                 "--method", "loglikelihood", "--human-labels", str(tmp_path / "humans.jsonl"), "--rubric"])  # fmt: skip
    assert code == 0
    judge = json.loads((tmp_path / "b" / "judge.json").read_text())
    entry = judge["judges"][f"reference:{tiny_long_dir}"]
    assert entry["pairwise"]["n"] == 2 and entry["calibration"]["n"] == 2 and len(entry["rubric_scores"]["x"]) == 2


def test_list_and_clear_errors(capsys):
    assert main(["eval", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("mmlu", "humaneval", "gsm8k_sc", "sycophancy_pushback", "lost_in_the_middle"):
        assert name in listing
    assert main(["eval", "run", "no_such_task"]) == 2
    assert "llmkit: error: unknown task 'no_such_task'" in capsys.readouterr().err
    assert main(["eval", "compare", "/nonexistent/a", "/nonexistent/b"]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_plugin_registrations():
    for name in ("exact_match", "numeric_match", "python_tests"):
        assert registry("verifiers").owner(name).startswith("llmkit-eval")
    assert verify("exact_match", "", "The Paris!", "paris").passed
    assert verify("python_tests", "def f():\n", "    return 3\n", "assert f() == 3").passed
    assert not verify("python_tests", "def f():\n", "    return 4\n", "assert f() == 3").passed
