"""`llmkit diagnose` on planted failures, with deterministic rule models: a buried instruction (layer 1),
unbounded context growth in a saved multi-turn agent run (layer 2), a task the model cannot do at any
prompt (layer 3), an answer it reaches only when sampled (layer 4)."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from llmkit.core.assistant_output import parse_assistant_output
from llmkit.core.backends import ChatChoice, ChatResult
from llmkit.lab.diagnose import (
    FailingCase,
    Settings,
    diagnose,
    load_agent_run_case,
    load_jsonl_cases,
    load_session_case,
    wilson_interval,
)
from llmkit.lab.errors import LabError

CODE_WORD = "Always end your reply with the code word ORCHID."
FILLER = "The quarterly figures were filed on time and the archive was checked by the staff."


class RuleModel:
    """A deterministic stand-in for a model: `respond(text, temperature, sample)` over the conversation's text
    (its messages joined); n samples per request; words count as tokens."""

    name = "rules"
    supports_structured = False

    def __init__(self, respond):
        self.respond = respond
        self.conversations: list[list[dict]] = []

    def chat(self, conversations, params, tools=None, structured=None):
        params = params if isinstance(params, list) else [params] * len(conversations)
        results = []
        for messages, p in zip(conversations, params, strict=True):
            self.conversations.append([dict(m) for m in messages])
            text = "\n".join(str(m.get("content") or "") for m in messages)
            replies = [self.respond(text, p.temperature, sample) for sample in range(p.n)]
            choices = [
                ChatChoice(parse_assistant_output(r, "hermes"), r, "stop", [0] * len(r.split())) for r in replies
            ]
            results.append(ChatResult(choices, len(text.split())))
        return results


def primacy_recency(text: str, temperature: float, sample: int) -> str:
    """Follows an instruction only within the first or last 30 words of its context (lost in the middle)."""
    words = text.split()
    edges = " ".join(words[:30] + words[-30:])
    return "Filed on time. ORCHID" if "ORCHID" in edges else "Filed on time."


def buried_cases(tmp_path, count=4):
    records = []
    for index in range(count):
        policy = " ".join([FILLER] * 6 + [CODE_WORD] + [FILLER] * 6)
        question = f"Were report {index} figures filed on time?"
        records.append(
            {"id": f"r{index}", "system": policy, "prompt": question, "expected": "ORCHID", "critical": CODE_WORD}
        )
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return load_jsonl_cases(path)


def test_a_buried_instruction_is_layer_1(tmp_path):
    model = RuleModel(primacy_recency)
    report = diagnose(buried_cases(tmp_path), model, settings=Settings(samples=3))

    verdict = report["verdict"]
    assert (verdict["layer"], verdict["intervention"], verdict["cases"], verdict["of"]) == (1, "critical_first", 4, 4)
    assert "buried" in verdict["fix"]
    rows = {row["name"]: row for row in report["interventions"]}
    assert (rows["critical_first"]["fixed"], rows["critical_last"]["fixed"], rows["stripped"]["fixed"]) == (4, 4, 0)
    assert (rows["chain_of_thought"]["fixed"], rows["more_samples"]["fixed"]) == (0, 0)
    assert rows["critical_first"]["mcnemar_p"] == pytest.approx(0.125)  # 4 of 4 discordant: 2 * 0.5**4
    assert (
        rows["critical_first"]["ci_low"] == pytest.approx(wilson_interval(4, 4)[0])
        and rows["critical_first"]["ci_low"] > 0.4
    )
    assert rows["compare_model"]["skipped"] == {"no comparison model configured (--compare-model)": 4}
    assert rows["structured"]["skipped"] == {"the case names no output structure (JSONL 'choices' or 'schema')": 4}
    # the reorder really moved the instruction: first in the system prompt, and gone from the middle
    moved = [c for c in model.conversations if c[0]["content"].startswith(CODE_WORD)]
    assert len(moved) == 4 and all(c[0]["content"].count("ORCHID") == 1 for c in moved)


def test_a_buried_critical_item_in_a_session_file_is_linted_and_layer_1(tmp_path, tiny):
    from llmkit.context import TokenCounter
    from llmkit.core.backends import ModelBackend

    history = [{"role": "user", "content": f"Note {i}: {FILLER}"} for i in range(30)]
    history.insert(15, {"role": "user", "content": CODE_WORD, "metadata": {"critical": True}})
    session = tmp_path / "session.json"
    session.write_text(json.dumps({"budget": 20000, "system": "You file reports.", "history": history,
                                   "current": "Were the figures filed on time?"}))  # fmt: skip
    counter = TokenCounter.for_backend(ModelBackend(tiny))  # the tiny test model's tokenizer: real counts
    case = load_session_case(session, counter, expected="ORCHID")

    assert case.critical == CODE_WORD and case.task == "Were the figures filed on time?"
    assert [f["rule"] for f in case.lint] == ["required-missing", "critical-in-middle"]  # no objective; buried
    report = diagnose([case], RuleModel(primacy_recency), settings=Settings(samples=2))
    assert (report["verdict"]["layer"], report["verdict"]["intervention"]) == (1, "critical_first")
    assert report["cases"][0]["lint"][1]["rule"] == "critical-in-middle"
    assert "lint session: critical-in-middle (warning): 'Always end your reply" in _printed(report)


def _printed(report) -> str:
    from rich.console import Console

    from llmkit.lab.diagnose import print_report

    console = Console(record=True, width=200)
    print_report(report, console)
    return console.export_text()


def _saved_growing_run(tmp_path):
    """A real ReAct run (llmkit-orchestrate, checkpointed in SQLite) that reads six long logs, keeping every tool
    result verbatim (nothing bounds the context), then answers from the last log instead of the task."""
    from llmkit.context import ToolResultLifecycle
    from llmkit.orchestrate import CheckpointStore, ReActAgent, tool
    from llmkit.orchestrate.testing import ScriptedBackend, hermes_call

    @tool
    def read_log(page: int) -> str:
        """Read one page of the meeting log."""
        return f"Log page {page}: " + " ".join([FILLER] * 4) + " Someone mentioned Madrid."

    replies = [hermes_call("read_log", {"page": page}) for page in range(1, 7)] + ["The meeting is in Madrid."]
    agent = ReActAgent(
        ScriptedBackend(replies),
        [read_log],
        checkpoints=CheckpointStore(tmp_path / "runs.db"),
        lifecycle=ToolResultLifecycle(verbatim_turns=100, summary_turns=100),
    )
    task = "The team meeting is in Lisbon. Read the six log pages, then say which city the meeting is in."
    result = agent.run(task, run_id="grow1")
    assert result.answer == "The meeting is in Madrid."
    return tmp_path / "runs.db"


def lost_past_150_words(text: str, temperature: float, sample: int) -> str:
    """Answers from the task while the context is short; past 150 words, with the city the context names most."""
    if len(text.split()) > 150:
        cities = re.findall(r"Madrid|Lisbon", text)
        return f"The meeting is in {max(set(cities), key=cities.count)}."
    return "The meeting is in Lisbon." if "Lisbon" in text else "I do not know."


def test_unbounded_growth_in_a_saved_agent_run_is_layer_2(tmp_path):
    case = load_agent_run_case(_saved_growing_run(tmp_path), None, expected="Lisbon")

    tokens = case.growth.prompt_tokens
    assert len(tokens) == 7 and all(b > a for a, b in itertools.pairwise(tokens)) and case.growth.unbounded
    assert case.messages[-1]["role"] == "tool" and "page 6" in case.messages[-1]["content"]  # the last call's context
    report = diagnose([case], RuleModel(lost_past_150_words), settings=Settings(samples=2))

    verdict = report["verdict"]
    assert (verdict["layer"], verdict["layer_name"], verdict["intervention"]) == (2, "system design", "stripped")
    assert f"prompt tokens {tokens[0]} → {tokens[-1]} over 7 calls" in verdict["fix"]
    outcomes = report["cases"][0]["outcomes"]
    assert not outcomes["baseline"]["passed"] and outcomes["stripped"]["passed"]
    printed = _printed(report)
    assert f"growth grow1: prompt tokens per call {', '.join(map(str, tokens))} (unbounded)" in printed
    assert "verdict: layer 2 (system design) for 1 of 1 reproduced failure(s), decided by stripped" in printed


def test_the_same_fix_without_growth_is_layer_1():
    """Stripping helps a single-turn case too, but without growth the context is a prompt matter, not design."""
    case = FailingCase(
        "c", [{"role": "system", "content": f"{FILLER} The Madrid office called. " * 8},
              {"role": "user", "content": "The meeting is in Lisbon. Which city is the meeting in?"}],
        "Lisbon", "The meeting is in Lisbon. Which city is the meeting in?",
    )  # fmt: skip
    report = diagnose([case], RuleModel(lost_past_150_words), settings=Settings(samples=1))
    assert (report["verdict"]["layer"], report["verdict"]["intervention"]) == (1, "stripped")


def never_multiplies(text: str, temperature: float, sample: int) -> str:
    return "Answer: 4200" if "step by step" in text else "It is about 4200."


def test_a_task_the_model_cannot_do_at_any_prompt_is_layer_3(tmp_path):
    path = tmp_path / "mul.jsonl"
    path.write_text(
        json.dumps({"id": "mul", "system": "You are a calculator.", "prompt": "734829 * 581937?",
                    "expected": "427624183773", "choices": ["427624183773", "4200"]}) + "\n"
    )  # fmt: skip
    cases = load_jsonl_cases(path)
    alone = diagnose(cases, RuleModel(never_multiplies), settings=Settings(samples=4))
    assert (alone["verdict"]["layer"], alone["verdict"]["intervention"]) == (3, None)
    assert "--compare-model" in alone["verdict"]["fix"]
    rows = {row["name"]: row for row in alone["interventions"]}
    assert all(rows[n]["ran"] == 1 and rows[n]["fixed"] == 0 for n in ("stripped", "chain_of_thought", "more_samples"))
    assert rows["structured"]["skipped"] == {"the rules backend cannot constrain decoding (use --backend engine)": 1}
    assert alone["cases"][0]["outcomes"]["more_samples"]["samples"] == 4

    larger = RuleModel(lambda text, t, s: "427624183773")
    compared = diagnose(cases, RuleModel(never_multiplies), larger, Settings(samples=2), compare_model="larger")
    assert (compared["verdict"]["layer"], compared["verdict"]["intervention"]) == (3, "compare_model")
    assert "larger model" in compared["verdict"]["fix"]


def test_an_answer_reached_only_by_sampling_is_layer_4():
    def sometimes(text, temperature, sample):
        return "Paris" if temperature > 0 and sample == 2 else "Lyon"

    case = FailingCase("c", [{"role": "user", "content": "Capital of France?"}], "Paris", "Capital of France?")
    report = diagnose([case], RuleModel(sometimes), settings=Settings(samples=4))
    assert (report["verdict"]["layer"], report["verdict"]["layer_name"]) == (4, "training")
    assert report["cases"][0]["outcomes"]["more_samples"]["passes"] == 1


def test_cases_right_at_baseline_are_not_reproduced():
    case = FailingCase("c", [{"role": "user", "content": "Say ok"}], "ok", "Say ok")
    report = diagnose([case], RuleModel(lambda *a: "ok"), settings=Settings(samples=1))
    assert report["verdict"]["layer"] is None and report["cases"][0]["layer"] is None


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"prompt": "x"}, "'expected'"),
        ({"prompt": "x", "messages": [], "expected": "y"}, "exactly one of"),
        ({"prompt": "x", "expected": "y", "critical": "z"}, "critical instruction 'z' is in none"),
        ({"prompt": "x", "expected": "y", "match": "fuzzy"}, "match must be one of"),
        ({"prompt": "x", "expected": "y", "colour": 1}, "unknown fields ['colour']"),
        ({"prompt": "x", "expected": "y", "choices": []}, "'choices' must be a non-empty list"),
        ({"prompt": "x", "expected": "(y", "match": "regex"}, "expected is not a valid regex"),
    ],
)
def test_bad_jsonl_cases_are_refused(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(LabError, match=re.escape(message)):
        load_jsonl_cases(path)


def test_a_store_with_several_runs_needs_a_run_id(tmp_path):
    from llmkit.orchestrate import CheckpointStore

    store = CheckpointStore(tmp_path / "runs.db")
    store.start("a", "react", "t", "f")
    store.start("b", "react", "t", "f")
    store.close()
    with pytest.raises(LabError, match="holds 2 runs; choose one with --run-id"):
        load_agent_run_case(tmp_path / "runs.db", None, "x")


def test_mixed_cases_split_by_layer_and_a_tie_goes_to_the_earlier_layer(tmp_path):
    buried = buried_cases(tmp_path, count=1)
    hard = FailingCase("hard", [{"role": "user", "content": "734829 * 581937?"}], "427624183773", "734829 * 581937?")
    report = diagnose([*buried, hard], RuleModel(primacy_recency), settings=Settings(samples=2))
    assert [c["layer"] for c in report["cases"]] == [1, 3]
    assert report["verdict"]["per_layer"] == {"1": 1, "3": 1}
    assert (report["verdict"]["layer"], report["verdict"]["cases"], report["verdict"]["of"]) == (1, 1, 2)
    rows = {row["name"]: row for row in report["interventions"]}
    assert (rows["critical_first"]["ran"], rows["critical_first"]["fixed"], rows["chain_of_thought"]["ran"]) == (
        1,
        1,
        2,
    )


def test_the_cli_tells_inputs_apart_and_asks_for_what_is_missing(tmp_path):
    import argparse

    from llmkit.lab.diagnose.command import input_kind, load_cases

    runs = _saved_growing_run(tmp_path)
    (tmp_path / "cases.jsonl").write_text(json.dumps({"prompt": "x", "expected": "y"}) + "\n")
    (tmp_path / "session.json").write_text("{}")
    assert [input_kind(tmp_path / n) for n in ("runs.db", "cases.jsonl", "session.json")] == [
        "agent-run",
        "jsonl",
        "session",
    ]

    def args(path, **extra):
        return argparse.Namespace(input=str(path), kind=None, expected=None, match="contains", run_id=None, **extra)

    with pytest.raises(LabError, match=r"\(agent-run\) holds no expected answer: give it with --expected"):
        load_cases(args(runs), backend=None)
    (case,) = load_cases(argparse.Namespace(**{**vars(args(runs)), "expected": "Lisbon"}), backend=None)
    assert case.id == "grow1" and case.source == f"{runs}#grow1"
    with pytest.raises(LabError, match="JSONL cases carry their own 'expected'"):
        load_cases(argparse.Namespace(**{**vars(args(tmp_path / "cases.jsonl")), "expected": "y"}), backend=None)
    with pytest.raises(LabError, match="no such file"):
        input_kind(tmp_path / "missing.jsonl")
