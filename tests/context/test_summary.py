"""Structured summaries: JSON against the schema, retry with the error, fail loudly; rolling folds."""

from __future__ import annotations

import json

import pytest

from llmkit.context import ContextWindow, PromptedJSON, RollingSummary, StructuredOutputError, Summarizer, TurnSummary
from llmkit.context.structured import extract_json

GOOD = {
    "objective": "ship the release",
    "decisions": ["use semver"],
    "actions_and_outcomes": ["ran tests: 3 failed"],
    "current_state": "fixing tests",
    "constraints": ["no force pushes"],
}


def test_valid_json_is_accepted_on_the_first_attempt(scripted):
    backend = scripted([f"Sure:\n```json\n{json.dumps(GOOD)}\n```"])
    summary = PromptedJSON(backend).generate([{"role": "user", "content": "summarize"}], TurnSummary)
    assert summary == TurnSummary(**GOOD)
    assert '"current_state"' in backend.conversations[0][-1]["content"]  # the schema is in the prompt


def test_invalid_output_is_retried_with_the_validation_error_fed_back(scripted):
    missing = {k: v for k, v in GOOD.items() if k != "constraints"}
    backend = scripted([json.dumps(missing), json.dumps(GOOD)])
    generator = PromptedJSON(backend, max_attempts=3)
    assert generator.generate([{"role": "user", "content": "summarize"}], TurnSummary).constraints == [
        "no force pushes"
    ]
    retry = backend.conversations[1]
    assert retry[-2] == {"role": "assistant", "content": json.dumps(missing)}
    assert "constraints: Field required" in retry[-1]["content"]
    assert generator.attempts_used == [2]


def test_output_that_never_validates_fails_loudly(scripted):
    backend = scripted(["not json", '{"objective": 3}', "{}"])
    with pytest.raises(StructuredOutputError, match="no reply validated against TurnSummary in 3 attempts"):
        PromptedJSON(backend).generate([{"role": "user", "content": "summarize"}], TurnSummary)


def test_extra_fields_are_rejected_not_silently_dropped(scripted):
    backend = scripted([json.dumps({**GOOD, "mood": "happy"})])
    with pytest.raises(StructuredOutputError, match="mood: Extra inputs are not permitted"):
        PromptedJSON(backend, max_attempts=1).generate([{"role": "user", "content": "s"}], TurnSummary)


def test_extract_json():
    assert extract_json('prefix {"a": {"b": 1}} suffix') == '{"a": {"b": 1}}'
    assert extract_json("```json\n{}\n```") == "{}"


def test_a_summary_never_loses_a_constraint(scripted):
    forgetful = {**GOOD, "constraints": []}
    backend = scripted([json.dumps(forgetful)])
    previous = TurnSummary(**{**GOOD, "constraints": ["reply in French"]})
    summary = Summarizer(PromptedJSON(backend)).summarize(previous, 4, [], constraints=["no force pushes"])
    assert summary.constraints == ["reply in French", "no force pushes"]


def fill(window, turns):
    for _turn in range(turns):
        window.add_message("user", f"request {window.turn + 1}")
        window.add_message("assistant", f"response {window.turn}")


def test_rolling_summary_folds_older_turns_in_batches_and_keeps_the_live_window_verbatim(scripted):
    backend = scripted([json.dumps(GOOD), json.dumps({**GOOD, "current_state": "tests green"})])
    window = ContextWindow(backend, budget=5000)
    window.system = "You help with releases."
    window.constraints = ["no force pushes"]
    rolling = RollingSummary(Summarizer(PromptedJSON(backend)), live_turns=3, fold_every=2)
    fill(window, 4)
    assert not rolling.maybe_fold(window)  # 1 aged turn < fold_every
    fill(window, 1)
    assert rolling.maybe_fold(window) and window.summarized_through == 2
    assert "[turn 1] user: request 1" in backend.conversations[0][-1]["content"]
    rendered = window.render("next")
    contents = [m["content"] for m in rendered.messages]
    assert contents[1].startswith("Summary of the conversation so far (turns 1-2):")
    assert "request 1" not in "\n".join(contents) and "request 3" in contents[2]
    assert rendered.messages[1]["role"] == "system" and rendered.static_messages == 1
    fill(window, 1)
    assert not rolling.maybe_fold(window)  # summary message stays byte-identical between folds
    assert window.render("next").messages[1]["content"] == contents[1]
    fill(window, 1)
    assert rolling.maybe_fold(window) and window.summarized_through == 4
    assert "Previous summary" in backend.conversations[1][-1]["content"]
    assert window.summary.current_state == "tests green"


def test_a_summarizer_failure_leaves_the_window_unchanged(scripted):
    backend = scripted(["nope"] * 3)
    window = ContextWindow(backend, budget=5000)
    fill(window, 6)
    rolling = RollingSummary(Summarizer(PromptedJSON(backend)), live_turns=2, fold_every=2)
    with pytest.raises(StructuredOutputError):
        rolling.maybe_fold(window)
    assert window.summary is None and window.summarized_through == 0
