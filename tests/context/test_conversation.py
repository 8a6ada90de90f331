"""The Conversation loop: fold when due, render, log, chat, record the plain exchange."""

from __future__ import annotations

import json

from llmkit.context import (
    ContextLog,
    ContextWindow,
    Conversation,
    PromptedJSON,
    RetrievedChunk,
    RollingSummary,
    Summarizer,
)

SUMMARY = {
    "objective": "o",
    "decisions": [],
    "actions_and_outcomes": [],
    "current_state": "s",
    "constraints": ["be brief"],
}


def test_conversation_records_plain_messages_logs_every_call_and_folds(scripted, tmp_path):
    replies = ["reply 1", "reply 2", "reply 3", json.dumps(SUMMARY), "reply 4"]
    backend = scripted(replies)
    window = ContextWindow(backend, budget=5000)
    window.system = "sys"
    window.constraints = ["be brief"]
    log = ContextLog(tmp_path / "log.jsonl")
    rolling = RollingSummary(Summarizer(PromptedJSON(backend)), live_turns=1, fold_every=2)
    conversation = Conversation(backend, window, summarizer=rolling, log=log)
    for turn in range(1, 5):
        window.set_retrieved([RetrievedChunk(f"chunk {turn}", "d.md")])
        assert conversation.send(f"message {turn}").choices[0].text == f"reply {turn}"
    assert [i.content for i in window.history if i.role == "user"] == [f"message {t}" for t in range(1, 5)]
    assert window.summarized_through == 2 and window.summary.constraints == ["be brief"]
    assert [e["label"] for e in log.read()] == ["turn 1", "turn 2", "turn 3", "turn 4"]
    last_call = backend.conversations[-1]
    assert last_call[1]["content"].startswith("Summary of the conversation so far (turns 1-2)")
    assert "chunk 4" in last_call[-1]["content"] and "message 1" not in json.dumps(last_call)
