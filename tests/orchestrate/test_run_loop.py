"""The run loop every agent kind shares, driven by a hand-written step policy (no model, none of the three agents):
limits, calls per step, loop detection, approval, checkpoints and resume, tracing and events, sub-runs, settings."""

from __future__ import annotations

import pytest

from llmkit.core.assistant_output import ToolCall
from llmkit.orchestrate import (
    CheckpointError,
    CheckpointStore,
    Limits,
    LoopDetector,
    OrchestrateError,
    Pricing,
    ToolPolicy,
    Tracer,
    read_trace,
    tool,
)
from llmkit.orchestrate.run_loop import Agent
from llmkit.orchestrate.settings import AgentSettings
from llmkit.orchestrate.testing import ScriptedBackend


def no_model(messages):
    raise AssertionError("a hand-written step policy never calls the model")


class Interrupt(BaseException):
    """Stands in for a crash or Ctrl-C (not an Exception: nothing in the loop may swallow it)."""


class ScriptPolicy(Agent):
    """Step n proposes the calls script[n-1] and counts `tokens_per_step` tokens; when the script is done the run
    answers with the last tool result. A script of None repeats `add(n=step)` forever."""

    kind = "scripted"
    default_name = "scripted"

    def __init__(self, tools, script=None, tokens_per_step=0, **options):
        super().__init__(ScriptedBackend(respond=no_model), tools, **options)
        self.script, self.tokens_per_step = script, tokens_per_step

    def config(self):
        return {"script": self.script}

    def step(self, state, span):
        step = state.steps + 1
        if self.script is not None and step > len(self.script):
            state.finish("answer", "the script is done", state.tool_log[-1]["content"] if state.tool_log else None)
            return
        state.usage.add_call(self.tokens_per_step, self.tokens_per_step, self.model.pricing)
        planned = [("add", {"n": step})] if self.script is None else self.script[step - 1]
        calls = [ToolCall(name, dict(arguments), f"s{step}c{i}") for i, (name, arguments) in enumerate(planned)]
        self.take_actions(state, calls, step, span)
        state.steps += 1


def make_tools(executed):
    @tool
    def add(n: int) -> str:
        """Add n to the total."""
        executed.append(n)
        return f"added {n}"

    @tool(permission="requires_approval")
    def send(n: int) -> str:
        """Send n somewhere."""
        executed.append(("sent", n))
        return f"sent {n}"

    return [add, send]


def test_each_limit_stops_the_run_before_the_next_step():
    steps = ScriptPolicy(make_tools([]), limits=Limits(max_steps=3)).run("t")
    assert (steps.stop_reason, steps.steps, steps.detail) == ("max_steps", 3, "reached the limit of 3 steps")
    assert [e["content"] for e in steps.tool_log] == ["added 1", "added 2", "added 3"]
    tokens = ScriptPolicy(make_tools([]), tokens_per_step=50, limits=Limits(max_steps=50, max_tokens=300)).run("t")
    assert (tokens.stop_reason, tokens.steps, tokens.usage.total_tokens) == ("max_tokens", 3, 300)
    priced = ScriptPolicy(
        make_tools([]), tokens_per_step=1000, pricing=Pricing(100.0, 100.0), limits=Limits(max_steps=50, max_cost=0.5)
    ).run("t")
    assert (priced.stop_reason, priced.steps) == ("max_cost", 3) and priced.usage.cost == pytest.approx(0.6)
    assert "the limit is 0.5" in priced.detail


def test_calls_past_the_per_step_limit_are_answered_not_run():
    executed = []
    script = [[("add", {"n": 1}), ("add", {"n": 2}), ("add", {"n": 3})]]
    result = ScriptPolicy(make_tools(executed), script, limits=Limits(max_calls_per_step=2)).run("t")
    assert executed == [1, 2] and result.usage.tool_calls == 2
    assert [e["status"] for e in result.tool_log] == ["ok", "ok", "not_run"]
    assert "at most 2 tool calls per step" in result.tool_log[2]["content"]


def test_a_loop_gets_one_intervention_then_stops_the_run():
    events, executed = [], []
    script = [[("add", {"n": 1})]] * 4 + [[("add", {"n": 2})]]
    result = ScriptPolicy(make_tools(executed), script, on_event=events.append).run("t")
    assert result.stop_reason == "loop" and "after 1 intervention" in result.detail and result.steps == 4
    assert [e["status"] for e in result.tool_log] == ["ok", "not_run", "ok", "not_run"] and executed == [1, 1]
    assert "Loop detected" in result.tool_log[1]["content"]
    assert [e.kind for e in events].count("intervention") == 1
    lenient = LoopDetector(max_repeats=5, max_total_repeats=5)
    assert ScriptPolicy(make_tools([]), script, loop_detector=lenient).run("t").ok  # the setting is honored


def test_approval_gates_every_call():
    script = [[("send", {"n": "3"})]]
    executed, asked = [], []
    refused = ScriptPolicy(make_tools(executed), script).run("t")  # default approver: nobody can approve
    assert refused.tool_log[0]["status"] == "refused" and executed == []
    assert "send needs approval and nobody can give it: this agent has no approver" in refused.tool_log[0]["content"]
    said_no = ScriptPolicy(make_tools(executed), script, approver=lambda request: asked.append(request) or False)
    assert "needs approval and it was not given" in said_no.run("t").tool_log[0]["content"] and executed == []
    assert asked[0].arguments == {"n": 3} and asked[0].agent == "scripted"  # validated: exactly what would run
    approved = ScriptPolicy(make_tools(executed), script, approver=lambda request: True).run("t")
    assert approved.tool_log[0]["status"] == "ok" and executed == [("sent", 3)]
    forbid = ToolPolicy(allowed={"add"}, forbidden={"send"})
    forbidden = ScriptPolicy(make_tools(executed), script, policy=forbid, approver=lambda request: True).run("t")
    assert (
        forbidden.tool_log[0]["status"] == "refused"
        and "send is forbidden for scripted" in forbidden.tool_log[0]["content"]
    )
    unnamed = ScriptPolicy(make_tools(executed), script, policy=ToolPolicy(allowed={"add"})).run("t")
    assert unnamed.tool_log[0]["status"] == "refused" and executed == [("sent", 3)]  # default deny


def test_an_interrupted_run_resumes_exactly_and_resume_checks_the_agent(tmp_path):
    script = [[("add", {"n": n})] for n in range(1, 5)]
    straight = ScriptPolicy(make_tools([]), script, checkpoints=CheckpointStore(tmp_path / "a.db")).run("t", "r")
    store, executed = CheckpointStore(tmp_path / "b.db"), []
    tools = make_tools(executed)

    @tool(name="add")
    def add_then_crash(n: int) -> str:
        """Add n to the total."""
        if n == 3:
            raise Interrupt
        return tools[0].function(n)

    with pytest.raises(Interrupt):
        ScriptPolicy([add_then_crash, tools[1]], script, checkpoints=store).run("t", run_id="r")
    assert executed == [1, 2] and store.record("r").status == "running"
    assert [row for row, _ in store.history("r")] == [0, 1, 2]  # the start, then one row per step
    resumed = ScriptPolicy(tools, script, checkpoints=store).resume("r")
    assert executed == [1, 2, 3, 4]  # nothing ran twice
    assert (resumed.answer, resumed.steps, resumed.usage) == (straight.answer, straight.steps, straight.usage)
    assert [e["content"] for e in resumed.tool_log] == [e["content"] for e in straight.tool_log]
    assert store.record("r").status == "finished" and [row for row, _ in store.history("r")] == [0, 1, 2, 3, 4, 5]

    class OtherKind(ScriptPolicy):
        kind = "other"

    with pytest.raises(CheckpointError, match="different scripted agent configuration"):
        OtherKind(tools, script, checkpoints=store).resume("r")
    with pytest.raises(CheckpointError, match="different scripted agent configuration"):
        ScriptPolicy(tools, script[:2], checkpoints=store).resume("r")
    with pytest.raises(CheckpointError, match="already exists"):
        ScriptPolicy(tools, script, checkpoints=store).run("t", run_id="r")


def test_spans_nest_and_events_narrate_every_step(tmp_path):
    events, saved = [], []
    tracer = Tracer(tmp_path / "trace.jsonl", opentelemetry=False)
    script = [[("add", {"n": 1})], [("add", {"n": 2}), ("add", {"n": 3})]]
    on_step = lambda state: saved.append((state.steps, state.status))  # noqa: E731
    ScriptPolicy(make_tools([]), script, tracer=tracer, on_event=events.append, on_step=on_step).run("t")
    spans = read_trace(tmp_path / "trace.jsonl")
    by_id = {s["span_id"]: s for s in spans}
    (run,) = [s for s in spans if s["name"] == "agent.run"]
    assert run["parent_id"] is None and run["attributes"]["kind"] == "scripted"
    assert run["attributes"]["stop_reason"] == "answer" and run["attributes"]["steps"] == 2
    steps = [s for s in spans if s["name"] == "agent.step"]
    assert [s["attributes"]["step"] for s in steps] == [1, 2, 3] and {s["parent_id"] for s in steps} == {run["span_id"]}
    tools = [s for s in spans if s["name"] == "tool.call"]
    assert [by_id[s["parent_id"]]["attributes"]["step"] for s in tools] == [1, 2, 2]
    assert all(s["attributes"]["status"] == "ok" for s in tools)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and events[-1].data["stop_reason"] == "answer"
    assert kinds.count("tool_started") == kinds.count("tool_finished") == 3
    assert saved == [(0, "running"), (1, "running"), (2, "running"), (2, "finished")]  # the start, every step


class Parent(Agent):
    """A policy that runs one `ScriptPolicy` child per step as part of its run, then answers."""

    kind = "parent"

    def __init__(self, tools, child_script, **options):
        super().__init__(ScriptedBackend(respond=no_model), tools, **options)
        self.child_script = child_script

    def step(self, state, span):
        if state.history:
            state.finish("answer", "the child is done", state.history[-1]["answer"])
            return
        settings = self.sub_settings(state, name="parent.child", system_prompt="child", seed=1, max_steps=10)
        child = ScriptPolicy(self.tools, self.child_script, settings=settings)
        result = self.run_inner(state, child, "the child's task", f"{state.run_id}-child", {"child": 1}, span)
        state.history.append({"answer": result.answer, "stop_reason": result.stop_reason})


def test_a_sub_run_counts_in_its_parent_and_resumes_inside_itself(tmp_path):
    script = [[("add", {"n": n})] for n in range(1, 5)]
    store, executed, crashed = CheckpointStore(tmp_path / "p.db"), [], []
    tools = make_tools(executed)

    @tool(name="add")
    def add_once_crashing(n: int) -> str:
        """Add n to the total."""
        if n == 3 and not crashed:
            crashed.append(n)
            raise Interrupt
        return tools[0].function(n)

    with pytest.raises(Interrupt):
        Parent([add_once_crashing, tools[1]], script, checkpoints=store).run("t", "p")
    assert executed == [1, 2] and store.latest("p")[1]["inner"]["steps"] == 2  # saved inside the child
    result = Parent([add_once_crashing, tools[1]], script, checkpoints=store).resume("p")
    assert executed == [1, 2, 3, 4] and result.ok and result.answer == "added 4"
    assert result.steps == 4 and result.usage.tool_calls == 4  # the child's steps and calls count here
    assert [e["child"] for e in result.tool_log] == [1, 1, 1, 1] and store.latest("p")[1]["inner"] is None
    budget = Parent(make_tools([]), None, limits=Limits(max_steps=3)).run("t")
    assert budget.history[0]["stop_reason"] == "max_steps" and budget.steps == 3  # the child gets what is left


def test_settings_come_as_one_object_or_as_keywords():
    tools = make_tools([])
    limits = Limits(max_steps=2)
    by_object = ScriptPolicy(tools, settings=AgentSettings(name="x", limits=limits, seed=5))
    by_keywords = ScriptPolicy(tools, name="x", limits=limits, seed=5)
    assert by_object.settings == by_keywords.settings and by_object.fingerprint() == by_keywords.fingerprint()
    assert ScriptPolicy(tools, settings=AgentSettings(name="x"), name="y").name == "y"  # keywords win
    default = ScriptPolicy(tools)
    assert (default.name, default.limits) == ("scripted", Limits())
    with pytest.raises(TypeError, match="unknown agent option"):
        ScriptPolicy(tools, max_steps=3)
    with pytest.raises(OrchestrateError, match="tool_choice must be 'auto' or 'required'"):
        AgentSettings(tool_choice="always")
    agent = ScriptPolicy(tools, [[("add", {"n": 1})]] * 2)
    first, second = agent.run("t"), agent.run("t")  # each run starts a fresh loop history
    assert [e["status"] for e in first.tool_log] == [e["status"] for e in second.tool_log] == ["ok", "not_run"]
    assert first.ok and second.ok
