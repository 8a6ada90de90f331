"""Memory levels (SQLite long-term store, session notes, relevance threshold) and handoff packets."""

from __future__ import annotations

import json

import pytest

from llmkit.context import ContextError, HandoffPacket, ResultSummary, StructuredOutputError
from llmkit.context.handoff import Artifact, ErrorBudget
from llmkit.context.memory import LongTermMemory, Memory, SessionMemory
from llmkit.context.retrieval import HashingEmbedder


def test_long_term_memory_persists_key_values_and_embeddings(tmp_path):
    path = tmp_path / "memory.sqlite"
    memory = LongTermMemory(path, HashingEmbedder())
    memory.put("user.name", "Ada")
    memory.put("user.name", "Ada Lovelace")
    memory.put("prefs", {"units": "metric"})
    first = memory.add("the user prefers metric units", {"turn": 3})
    memory.add("the staging server is db-staging-02")
    memory.close()
    reopened = LongTermMemory(path, HashingEmbedder())
    assert reopened.get("user.name") == "Ada Lovelace" and reopened.get("prefs") == {"units": "metric"}
    assert reopened.keys() == ["prefs", "user.name"] and reopened.get("missing", 7) == 7
    hits = reopened.search("which units does the user prefer", k=2)
    assert [h.id for h in hits] == [first] and hits[0].metadata == {"turn": 3}
    assert reopened.forget(first) and len(reopened) == 1
    assert reopened.delete("prefs") and not reopened.delete("prefs")


def test_irrelevant_memories_are_never_retrieved(tmp_path):
    memory = LongTermMemory(tmp_path / "m.sqlite", HashingEmbedder(), min_score=0.3)
    memory.add("the staging server is db-staging-02")
    assert memory.search("what is your favourite colour") == []
    assert memory.search("staging server", min_score=0.0)


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database" * 100)
    with pytest.raises(ContextError, match="not a usable SQLite memory store"):
        LongTermMemory(bad, HashingEmbedder()).put("a", 1)


def test_memory_levels_merge_and_become_labeled_chunks(tmp_path):
    session = SessionMemory(HashingEmbedder())
    session.remember("the build uses python 3.11")
    session.remember("the build uses python 3.11")
    long_term = LongTermMemory(tmp_path / "m.sqlite", HashingEmbedder(), min_score=0.25)
    long_term.add("the build uses python 3.11 on every runner")
    memory = Memory(session, long_term)
    hits = memory.relevant("which python does the build use")
    assert {h.level for h in hits} == {"session", "long_term"} and len(session.notes) == 1
    chunks = memory.as_chunks(hits)
    assert all(not c.trusted and c.source.startswith("memory:") for c in chunks)
    assert memory.relevant("quantum chromodynamics lecture") == []


def packet() -> HandoffPacket:
    return HandoffPacket(
        role="You are a test-fixing subagent.",
        task="Make tests/test_io.py pass.",
        distilled_context="The failure is an off-by-one in read_chunks(); the orchestrator already ruled out I/O errors.",
        artifacts=[Artifact(name="trace.txt", content="AssertionError: 9 != 10")],
        constraints=["do not change the public API"],
        error_budget=ErrorBudget(
            allowed_actions=["edit src/io.py", "run pytest"], approval_required=["add dependencies"]
        ),
    )


def test_handoff_packet_renders_every_section_in_a_fixed_order():
    prompt = packet().render_system_prompt()
    headings = ["# Role", "# Task", "# Context", "# Artifacts", "# Constraints", "# Error budget", "# Output"]
    positions = [prompt.index(h) for h in headings]
    assert positions == sorted(positions)
    assert '<artifact name="trace.txt">\nAssertionError: 9 != 10\n</artifact>' in prompt
    assert "- edit src/io.py" in prompt and "Ask for approval before:\n- add dependencies" in prompt
    assert json.dumps(ResultSummary.model_json_schema(), sort_keys=True) in prompt
    assert prompt == packet().render_system_prompt()


def test_result_summaries_validate_and_return_as_one_message():
    reply = 'Done. {"status": "completed", "summary": "fixed the off-by-one", "actions_taken": ["edited src/io.py"]}'
    result = ResultSummary.parse(reply)
    message = result.to_orchestrator_message("fixer")
    assert message["role"] == "user"
    assert message["content"] == (
        "Subagent fixer finished: completed.\nSummary: fixed the off-by-one\nActions taken: edited src/io.py"
    )
    with pytest.raises(StructuredOutputError, match="status"):
        ResultSummary.parse('{"status": "great", "summary": "x"}')
