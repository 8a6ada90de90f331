"""Lint rules, the context log, session files and `llmkit context inspect|log`."""

from __future__ import annotations

import json

from llmkit.context import ContextLog, ContextWindow, RetrievedChunk, lint, save_session
from llmkit.context.compression import ToolResultLifecycle
from llmkit.context.diagnostics import conflicting_instructions, directives
from llmkit.core.cli import main


def rules(findings):
    return {f.rule for f in findings}


def test_missing_objective_and_required_facts(tiny_backend):
    window = ContextWindow(tiny_backend, budget=3000)
    window.system = "Be brief."
    rendered = window.render("hi")
    findings = lint(window, rendered, required=["order number 1234"])
    assert [f.message for f in findings if f.rule == "required-missing"] == [
        "no objective set: nothing anchors the task",
        "required information missing: 'order number 1234'",
    ]


def test_a_constraint_cut_from_the_context_is_reported(tiny_backend):
    window = ContextWindow(tiny_backend, budget=3000)
    window.objective = "help"
    window.constraints = ["reply in French"]
    rendered = window.render("hi")
    rendered.messages[-1]["content"] = "hi"  # as if the anchor had been lost
    assert "constraint not in the context: 'reply in French'" in [f.message for f in lint(window, rendered)]


def test_conflicting_instructions():
    assert directives("Always answer in English. Never use tables.") == [
        (False, "answer in English"),
        (True, "use tables"),
    ]
    found = conflicting_instructions(["Always answer in English", "you must never answer in English"])
    assert found and found[0].rule == "conflicting-instructions"
    assert conflicting_instructions(["Always answer in English", "Never use tables"]) == []


def test_critical_information_in_the_middle_of_a_long_context(tiny_backend):
    window = ContextWindow(tiny_backend, budget=6000)
    window.objective = "answer"
    for turn in range(12):
        window.add_message("user", f"filler question {turn} " * 8)
        window.add_message("assistant", "the launch code is 4471" if turn == 6 else f"filler answer {turn} " * 8)
    window.history[13].metadata["critical"] = True
    rendered = window.render("what now?")
    findings = lint(window, rendered, long_context=500)
    assert any(f.rule == "critical-in-middle" and "launch code" in f.message for f in findings)
    assert not any(f.rule == "critical-in-middle" for f in lint(window, rendered, long_context=100_000))


def test_over_long_context_and_uncorrected_superseded_assertions(tiny_backend):
    window = ContextWindow(tiny_backend, budget=400, zones={"reminders": 100})
    window.objective = "deploy"
    window.add_message("user", "The port is 8080.")
    window.add_message("assistant", " ".join(f"word{i}" for i in range(60)))
    window.add_message("user", "The port is 9090 now.")
    findings = lint(window, window.render("go"))
    assert {"over-long", "uncorrected-superseded"} <= rules(findings)
    superseded = next(f for f in findings if f.rule == "uncorrected-superseded")
    assert "'port' was 8080 (turn 1) and is 9090 (turn 2)" in superseded.message
    window.correct("port is 8080", "the port is 9090")
    assert "uncorrected-superseded" not in rules(lint(window, window.render("go")))


def test_context_log_records_hashes_and_zone_tokens(tiny_backend, tmp_path):
    log = ContextLog(tmp_path / "calls.jsonl")
    window = ContextWindow(tiny_backend, budget=3000)
    window.system = "s"
    for turn in range(2):
        window.set_retrieved([RetrievedChunk(f"chunk {turn}", "d.md")])
        log.record(window.render(f"q{turn}"), label=f"turn {turn}")
    entries = log.read()
    assert [e["label"] for e in entries] == ["turn 0", "turn 1"]
    assert entries[0]["prefix_hash"] == entries[1]["prefix_hash"]
    assert entries[0]["zone_hashes"]["retrieved"] != entries[1]["zone_hashes"]["retrieved"]
    assert set(entries[0]["zone_tokens"]) >= {"system", "history", "retrieved", "overhead"}


def session_file(tiny_backend, tmp_path):
    window = ContextWindow(tiny_backend, budget=3000, policies=[ToolResultLifecycle(1, 2)])
    window.system = "You are a release assistant. Always answer in English."
    window.objective = "ship version 2"
    window.constraints = ["never force-push"]
    window.add_document("Release steps: tag, build, upload.", "RELEASE.md")
    for turn in range(4):
        window.add_message("user", f"step {turn}")
        window.add_tool_result("shell", f"ok {turn}")
    window.add_message("user", "Never answer in English from now on.")
    window.state.set("version", "2.0.0")
    path = tmp_path / "session.json"
    save_session(window, path, current="what is next?")
    return path, window


def test_inspect_prints_zones_prefix_hash_and_findings(tiny_backend, tiny_model_dir, tmp_path, capsys):
    path, window = session_file(tiny_backend, tmp_path)
    code = main(["context", "inspect", str(path), "--model", str(tiny_model_dir), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["prefix_hash"] == window.render("what is next?").prefix_hash
    assert report["zone_tokens"]["documents"] > 0 and report["total_tokens"] <= 3000
    assert "conflicting-instructions" in {f["rule"] for f in report["lint"]}
    # the last user turn states a constraint ("Never answer in English"): promoted, kept and protected
    assert {d["action"] for d in report["decisions"]} == {"summarize", "evict", "keep"}
    code = main(["context", "inspect", str(path), "--model", str(tiny_model_dir), "--messages"])
    out = capsys.readouterr().out
    assert code == 1  # an error-level finding (the conflicting instructions)
    assert "prefix hash" in out and "documents" in out and "conflicting-instructions" in out


def test_inspect_and_log_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["context", "inspect", str(tmp_path / "bad.json"), "--model", str(tiny_model_dir)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    (tmp_path / "odd.json").write_text(json.dumps({"sidebar": 1}))
    assert main(["context", "inspect", str(tmp_path / "odd.json"), "--model", str(tiny_model_dir)]) == 2
    assert "unknown session fields ['sidebar']" in capsys.readouterr().err
    assert main(["context", "log", str(tmp_path / "none.jsonl")]) == 2
    assert "no context log" in capsys.readouterr().err


def test_log_command_prints_one_row_per_call(tiny_backend, tmp_path, capsys):
    log = ContextLog(tmp_path / "calls.jsonl")
    window = ContextWindow(tiny_backend, budget=3000)
    log.record(window.render("a"), label="first")
    assert main(["context", "log", str(log.path)]) == 0
    assert "first" in capsys.readouterr().out
