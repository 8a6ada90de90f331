"""State persisted after every step: an interrupted run resumes exactly where it stopped."""

from __future__ import annotations

import pytest

from llmkit.orchestrate import CheckpointError, CheckpointStore, ReActAgent, calculator, tool
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call

REPLIES = [hermes_call("record", {"n": i}) for i in range(1, 5)] + ["recorded 4"]


class Interrupt(BaseException):
    """Stands in for a crash or Ctrl-C (not an Exception: nothing in the loop may swallow it)."""


def make_agent(store, executed, interrupt_at=None):
    @tool
    def record(n: int) -> str:
        """Record a number."""
        executed.append(n)
        return f"recorded {n}"

    def respond(messages):
        turns = sum(m["role"] == "assistant" for m in messages)
        if interrupt_at is not None and turns == interrupt_at:
            raise Interrupt
        return REPLIES[turns]

    return ReActAgent(ScriptedBackend(respond=respond), [record], checkpoints=store, seed=7)


def test_an_interrupted_run_resumes_exactly(tmp_path):
    straight_executed: list[int] = []
    straight = make_agent(CheckpointStore(tmp_path / "a.db"), straight_executed).run("record", run_id="r1")

    store = CheckpointStore(tmp_path / "b.db")
    executed: list[int] = []
    with pytest.raises(Interrupt):
        make_agent(store, executed, interrupt_at=2).run("record", run_id="r1")
    assert executed == [1, 2] and store.record("r1").status == "running"
    assert [step for step, _ in store.history("r1")] == [0, 1, 2]

    resumed = make_agent(store, executed).resume("r1")
    assert executed == [1, 2, 3, 4]  # nothing ran twice
    assert resumed.ok and resumed.answer == straight.answer == "recorded 4"
    assert resumed.steps == straight.steps == 5
    strip = lambda log: [{k: v for k, v in e.items() if k not in ("call_id", "duration_s")} for e in log]  # noqa: E731
    assert strip(resumed.tool_log) == strip(straight.tool_log)
    assert resumed.usage == straight.usage
    assert store.record("r1").status == "finished"


def test_resuming_a_finished_run_returns_its_result_without_calling_the_model(tmp_path):
    store = CheckpointStore(tmp_path / "c.db")
    executed: list[int] = []
    first = make_agent(store, executed).run("record", run_id="done")
    again = make_agent(store, executed, interrupt_at=0).resume("done")  # any model call would raise
    assert again.answer == first.answer and executed == [1, 2, 3, 4]


def test_resume_refuses_unknown_runs_and_other_agents(tmp_path):
    store = CheckpointStore(tmp_path / "d.db")
    make_agent(store, []).run("record", run_id="x")
    with pytest.raises(CheckpointError, match="no run 'nope'"):
        make_agent(store, []).resume("nope")
    other = ReActAgent(ScriptedBackend(["hi"]), [calculator], checkpoints=store)
    with pytest.raises(CheckpointError, match="different react agent configuration"):
        other.resume("x")
    with pytest.raises(CheckpointError, match="already exists"):
        make_agent(store, []).run("record", run_id="x")
    with pytest.raises(CheckpointError, match="needs a checkpoint store"):
        ReActAgent(ScriptedBackend(["hi"])).resume("x")


def test_a_corrupt_store_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CheckpointError, match="cannot open checkpoint store"):
        CheckpointStore(path)


def test_a_state_saved_before_the_run_states_were_unified_resumes(tmp_path):
    """ReAct states used to be saved with `step` and without `saves`, `history` and `inner`."""
    store = CheckpointStore(tmp_path / "old.db")
    executed: list[int] = []
    with pytest.raises(Interrupt):
        make_agent(store, executed, interrupt_at=2).run("record", run_id="old")
    row, state = store.latest("old")
    old = {k: v for k, v in state.items() if k not in ("saves", "history", "inner")}
    old["step"] = old.pop("steps")
    store.save("old", row, old)
    resumed = make_agent(store, executed).resume("old")
    assert resumed.ok and resumed.steps == 5 and executed == [1, 2, 3, 4]
    store.save("old", row + 10, {**old, "from_the_future": 1})
    with pytest.raises(CheckpointError, match="fields this version does not know: from_the_future"):
        make_agent(store, executed).resume("old")
