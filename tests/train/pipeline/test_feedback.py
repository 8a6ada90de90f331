"""AI feedback with scripted backends: SL-CAI conversations and RLAIF labels that must survive the swap."""

from __future__ import annotations

import json

import pytest

from llmkit.core.assistant_output import AssistantMessage
from llmkit.core.backends import ChatChoice, ChatResult
from llmkit.train.errors import DataError
from llmkit.train.pipeline.feedback import (
    PreferenceItem,
    critique_and_revise,
    default_constitution,
    label_preferences,
    load_constitution,
    parse_choice,
)
from llmkit.train.pipeline.feedback.files import label_file, revise_file
from llmkit.train.pipeline.versioning import verify_dataset


class ScriptedBackend:
    """A chat backend whose reply is computed from the conversation; records every call."""

    name = "scripted"

    def __init__(self, reply):
        self.reply, self.calls = reply, []

    def chat(self, conversations, params, tools=None):
        self.calls.append([list(c) for c in conversations])
        return [
            ChatResult([ChatChoice(AssistantMessage(text), text, "stop", [])], 0)
            for text in (self.reply(c) for c in conversations)
        ]


def cai_reply(conversation):
    last = conversation[-1]["content"]
    if len(conversation) == 1:
        return f"Draft answer to: {last}"
    if "Rewrite" in last:
        return f"Revised ({len(conversation)} turns) answer to: {conversation[0]['content']}"
    return "Critique: the draft is vague."


def test_critique_and_revise_builds_the_conversation_of_the_paper():
    constitution = default_constitution()
    backend = ScriptedBackend(cai_reply)
    examples = critique_and_revise(
        backend, [("p1", "How do I boil an egg?"), ("p2", "Name a prime.")], constitution, rounds=2
    )
    assert len(backend.calls) == 1 + 2 * 2  # responses, then a critique and a revision call per round, batched
    revision_call = backend.calls[2][0]
    assert [m["role"] for m in revision_call] == ["user", "assistant", "user", "assistant", "user"]
    assert revision_call[1]["content"] == "Draft answer to: How do I boil an egg?"
    assert revision_call[3]["content"] == "Critique: the draft is vague."
    assert revision_call[4]["content"] in {p.revision for p in constitution.principles}
    second_round_critique = backend.calls[3][0]
    assert second_round_critique[1]["content"].startswith("Revised")  # round 2 critiques the revision
    record = examples[0].sft_record()
    assert record == {
        "id": "p1",
        "messages": [
            {"role": "user", "content": "How do I boil an egg?"},
            {"role": "assistant", "content": "Revised (5 turns) answer to: How do I boil an egg?"},
        ],
    }
    assert [r.principle for r in examples[0].rounds] == [
        r.principle
        for r in critique_and_revise(
            ScriptedBackend(cai_reply),
            [("p1", "How do I boil an egg?"), ("p2", "Name a prime.")],
            constitution,
            rounds=2,
        )[0].rounds
    ]  # principles are drawn from the seed


def test_revise_file_writes_trainable_sft_records(tmp_path):
    from llmkit.train.data.records import load_records

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"id": "a", "prompt": "Tell me a joke."})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "Hi"}]})
        + "\n"
    )
    summary = revise_file(
        ScriptedBackend(cai_reply),
        prompts,
        tmp_path / "sft.jsonl",
        tmp_path / "trace.jsonl",
        default_constitution(),
        quiet=True,
    )
    assert summary == {"examples": 2, "revised_differently": 2, "rounds": 1}
    assert len(load_records(tmp_path / "sft.jsonl", "sft")) == 2  # the trainer's own validation accepts them
    assert verify_dataset(tmp_path / "sft.jsonl")["pipeline"]["stage"] == "critique-revise"
    trace = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert trace[0]["rounds"][0]["critique"] == "Critique: the draft is vague."


def judge_preferring(word: str, position_bias_on: str | None = None):
    """A judge that prefers the response containing `word`; on prompts containing `position_bias_on` it always says A."""

    def reply(conversation):
        text = conversation[-1]["content"]
        if position_bias_on and position_bias_on in text:
            return "A"
        first = text.split("(A) ", 1)[1].split("\n\n(B) ", 1)[0]
        return "The better one is (A)." if word in first else "B"

    return reply


def test_a_label_counts_only_if_it_survives_the_swap():
    items = [
        PreferenceItem("fair", "Say hi", ("hello there, friend", "go away")),
        PreferenceItem("fair-reversed", "Say hi", ("go away", "hello there, friend")),
        PreferenceItem("biased", "BIAS Say hi", ("hello there, friend", "go away")),
    ]
    backend = ScriptedBackend(judge_preferring("friend", position_bias_on="BIAS"))
    labels = {label.item.id: label for label in label_preferences(backend, items, default_constitution())}
    assert len(backend.calls) == 2 and len(backend.calls[0]) == 3  # both orders, batched
    assert labels["fair"].preferred == 0 and labels["fair"].preference_record()["chosen"] == "hello there, friend"
    assert labels["fair-reversed"].preferred == 1
    assert labels["biased"].verdict_original == labels["biased"].verdict_swapped == "A"
    assert labels["biased"].preferred is None and not labels["biased"].consistent


def test_label_file_counts_dropped_labels_and_writes_dpo_records(tmp_path):
    from llmkit.train.data.records import load_records

    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"id": "1", "prompt": "Greet me", "responses": ["hi friend", "no"]},
        {"id": "2", "prompt": "BIAS greet me", "responses": ["hi friend", "no"]},
        {"id": "3", "prompt": "Greet me", "responses": ["nah", "hello friend"]},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend = ScriptedBackend(judge_preferring("friend", position_bias_on="BIAS"))
    counts = label_file(
        backend, pairs, tmp_path / "prefs.jsonl", tmp_path / "trace.jsonl", default_constitution(), quiet=True
    )
    assert counts == {"items": 3, "labelled": 2, "position_inconsistent": 1, "unparseable": 0}
    records = load_records(tmp_path / "prefs.jsonl", "dpo")
    assert [r.chosen for _, r in records] == ["hi friend", "hello friend"]
    pairs.write_text(json.dumps({"prompt": "x", "responses": ["only one"]}) + "\n")
    with pytest.raises(DataError, match="exactly two strings"):
        label_file(backend, pairs, tmp_path / "p.jsonl", tmp_path / "t.jsonl", default_constitution(), quiet=True)


def test_parse_choice_and_constitution_files(tmp_path):
    assert [parse_choice(t) for t in ["A", " (B).", "Answer: B", "I prefer a cat", "neither"]] == [
        "A",
        "B",
        "B",
        None,
        None,
    ]
    path = tmp_path / "c.yaml"
    path.write_text("principles:\n  - name: brief\n    critique: Is it too long?\n    revision: Make it shorter.\n")
    constitution = load_constitution(path)
    assert constitution.principles[0].name == "brief"
    with pytest.raises(DataError, match="no principle with a 'preference'"):
        constitution.for_preferences()
    path.write_text("principles:\n  - name: broken\n    critique: only\n")
    with pytest.raises(DataError, match="needs text for revision"):
        load_constitution(path)
