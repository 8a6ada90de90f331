"""The ReAct loop's control flow on a scripted backend: every limit, loop detection, parse errors, parallel
calls, per-phase tools, the final-answer tool, tracing and events."""

from __future__ import annotations

import threading

import pytest
from pydantic import BaseModel

from llmkit.core.errors import ContextLengthError
from llmkit.orchestrate import (
    Limits,
    LoopDetector,
    OrchestrateError,
    Pricing,
    ReActAgent,
    Tracer,
    calculator,
    read_trace,
    tool,
)
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call


def calc(expression: str) -> str:
    return hermes_call("calculator", {"expression": expression})


def test_answer_after_a_tool_call_uses_the_result():
    backend = ScriptedBackend([calc("6 * 7"), "It is 42."])
    result = ReActAgent(backend, [calculator]).run("What is 6 * 7?")
    assert result.ok and result.answer == "It is 42." and result.steps == 2
    assert [(e["name"], e["status"], e["content"]) for e in result.tool_log] == [("calculator", "ok", "42")]
    assert result.usage.model_calls == 2 and result.usage.tool_calls == 1
    assert backend.calls[0].tools[0]["function"]["name"] == "calculator"


def test_max_steps():
    backend = ScriptedBackend(respond=lambda messages: calc(f"{len(messages)} + 1"))
    result = ReActAgent(backend, [calculator], limits=Limits(max_steps=3)).run("count")
    assert result.stop_reason == "max_steps" and result.steps == 3 and not result.ok
    assert result.detail == "reached the limit of 3 steps" and len(backend.calls) == 3


def test_max_tokens():
    backend = ScriptedBackend(respond=lambda messages: calc(f"{len(messages)} + 1"))
    result = ReActAgent(backend, [calculator], limits=Limits(max_steps=50, max_tokens=400)).run("count")
    assert result.stop_reason == "max_tokens" and result.usage.total_tokens >= 400
    assert result.steps < 50 and "limit is 400" in result.detail


def test_max_cost():
    backend = ScriptedBackend(respond=lambda messages: calc(f"{len(messages)} + 1"))
    pricing = Pricing(prompt_per_million=1000.0, completion_per_million=2000.0)
    result = ReActAgent(backend, [calculator], pricing=pricing, limits=Limits(max_steps=50, max_cost=0.5)).run("x")
    assert result.stop_reason == "max_cost" and result.usage.cost >= 0.5
    expected = (result.usage.prompt_tokens * 1000 + result.usage.completion_tokens * 2000) / 1e6
    assert result.usage.cost == pytest.approx(expected)


def test_calls_beyond_the_per_step_limit_are_not_run():
    reply = "\n".join(calc(f"{i} + 1") for i in range(3))
    backend = ScriptedBackend([reply, "done"])
    result = ReActAgent(backend, [calculator], limits=Limits(max_calls_per_step=2)).run("three at once")
    assert [e["status"] for e in result.tool_log] == ["ok", "ok", "not_run"]
    assert "at most 2 tool calls per step" in result.tool_log[2]["content"] and result.usage.tool_calls == 2


def test_bad_limits_are_refused():
    with pytest.raises(OrchestrateError, match="max_steps"):
        Limits(max_steps=0)
    with pytest.raises(OrchestrateError, match="max_cost must be positive"):
        Limits(max_cost=-1)


def test_parallel_calls_run_concurrently_and_results_keep_the_call_order():
    barrier = threading.Barrier(3, timeout=10)

    @tool
    def wait(label: str) -> str:
        """Wait for the other calls, then return the label."""
        barrier.wait()  # passes only when all three calls run at the same time
        return label

    reply = "\n".join(hermes_call("wait", {"label": x}) for x in "abc")
    result = ReActAgent(ScriptedBackend([reply, "ok"]), [wait]).run("in parallel")
    assert [(e["arguments"]["label"], e["content"]) for e in result.tool_log] == [("a", "a"), ("b", "b"), ("c", "c")]
    messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["content"].split("\n")[1] for m in messages] == ["a", "b", "c"]


def test_repeated_call_gets_an_intervention_then_a_stop():
    events = []
    same = calc(" 2 + 2 ")
    backend = ScriptedBackend([calc("2 + 2"), same, calc("2 + 2"), calc("2  +  2 "), "never"])
    agent = ReActAgent(backend, [calculator], on_event=events.append, limits=Limits(max_steps=10))
    result = agent.run("loop")
    assert result.stop_reason == "loop" and "after 1 intervention" in result.detail
    statuses = [e["status"] for e in result.tool_log]
    assert statuses == ["ok", "not_run", "ok", "not_run"]
    assert "Loop detected" in result.tool_log[1]["content"] and "2 times in a row" in result.tool_log[1]["content"]
    assert [e.kind for e in events].count("intervention") == 1


def test_cycle_of_calls_is_a_loop():
    cycle = [calc("1 + 1"), calc("2 + 2"), calc("3 + 3")] * 2
    backend = ScriptedBackend([*cycle, "fine"])
    detector = LoopDetector(max_total_repeats=10, max_cycle=3, max_interventions=1)
    result = ReActAgent(backend, [calculator], loop_detector=detector).run("cycle")
    notes = [e["content"] for e in result.tool_log if e["status"] == "not_run"]
    assert notes and "the last 3 calls repeat the 3 before them (a cycle)" in notes[0]
    assert result.ok and result.answer == "fine"  # after the intervention the model changed course


def test_the_same_call_with_other_arguments_is_not_a_loop():
    backend = ScriptedBackend([calc("1 + 1"), calc("1 + 2"), calc("1 + 3"), "3 results"])
    result = ReActAgent(backend, [calculator]).run("three sums")
    assert result.ok and [e["status"] for e in result.tool_log] == ["ok", "ok", "ok"]


def test_an_unreadable_tool_call_is_sent_back_to_fix():
    broken = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1+1"\n</tool_call>'
    backend = ScriptedBackend([broken, calc("1 + 1"), "2"])
    result = ReActAgent(backend, [calculator]).run("one plus one")
    assert result.ok and result.answer == "2"
    note = backend.calls[1].messages[-1]
    assert note["role"] == "user" and note["content"].startswith("Your tool call could not be read")


def test_invalid_arguments_come_back_and_the_model_fixes_them():
    backend = ScriptedBackend([hermes_call("calculator", {"expr": "1+1"}), calc("1+1"), "2"])
    result = ReActAgent(backend, [calculator]).run("one plus one")
    assert result.ok and [e["status"] for e in result.tool_log] == ["invalid_arguments", "ok"]
    assert "unexpected argument 'expr'" in result.tool_log[0]["content"]


class Answer(BaseModel):
    value: int
    unit: str


def test_final_answer_tool_with_a_schema_validates_and_retries():
    backend = ScriptedBackend(
        [
            calc("6 * 7"),
            hermes_call("final_answer", {"value": "forty-two", "unit": "m"}),
            hermes_call("final_answer", {"value": 42, "unit": "m"}),
        ]
    )
    result = ReActAgent(backend, [calculator], tool_choice="required", answer_schema=Answer).run("six sevens")
    assert result.ok and result.answer == {"value": 42, "unit": "m"}
    assert "invalid final answer" in result.tool_log[1]["content"]
    assert backend.calls[0].tools[-1]["function"]["name"] == "final_answer"


def test_tools_are_exposed_per_phase():
    @tool
    def search(query: str) -> str:
        """Search."""
        return "found"

    backend = ScriptedBackend([calc("1 + 1"), hermes_call("search", {"query": "x"}), "done"])
    agent = ReActAgent(backend, [calculator, search], exposure=lambda step: ["search"] if step == 1 else ["calculator"])
    result = agent.run("phases")
    assert [[t["function"]["name"] for t in c.tools] for c in backend.calls] == [
        ["search"],
        ["calculator"],
        ["calculator"],
    ]
    assert (
        result.tool_log[0]["status"] == "not_available"
        and "is available in this phase" in result.tool_log[0]["content"]
    )
    assert result.tool_log[1]["status"] == "not_available"


def test_old_tool_results_are_summarized_then_evicted():
    from llmkit.context import ToolResultLifecycle

    replies = [calc(f"{i} * 1000") for i in range(1, 5)] + ["done"]
    backend = ScriptedBackend(replies)
    agent = ReActAgent(backend, [calculator], lifecycle=ToolResultLifecycle(verbatim_turns=1, summary_turns=2))
    agent.run("many")
    tool_messages = [m["content"] for m in backend.calls[-1].messages if m["role"] == "tool"]
    assert "evicted" in tool_messages[0] and "4000" in tool_messages[-1]


def test_a_full_context_stops_the_run_with_the_reason():
    class Full(ScriptedBackend):
        def chat(self, conversations, params, tools=None, structured=None):
            raise ContextLengthError("the prompt has 9000 tokens; the model's context is 8192")

    result = ReActAgent(Full(["x"]), [calculator]).run("anything")
    assert result.stop_reason == "context_length" and "9000 tokens" in result.detail


def test_trace_spans_nest_and_events_narrate(tmp_path):
    events = []
    tracer = Tracer(tmp_path / "trace.jsonl", opentelemetry=False)
    ReActAgent(ScriptedBackend([calc("1+1"), "2"]), [calculator], tracer=tracer, on_event=events.append).run("t")
    spans = {s["name"]: s for s in read_trace(tmp_path / "trace.jsonl")}
    assert set(spans) == {"agent.run", "agent.step", "model.call", "tool.call"}
    assert (
        spans["tool.call"]["attributes"]["tool"] == "calculator" and spans["tool.call"]["attributes"]["status"] == "ok"
    )
    assert spans["agent.run"]["parent_id"] is None and spans["agent.run"]["attributes"]["stop_reason"] == "answer"
    by_id = {s["span_id"]: s for s in read_trace(tmp_path / "trace.jsonl")}
    step = by_id[spans["tool.call"]["parent_id"]]
    assert step["name"] == "agent.step" and by_id[step["parent_id"]]["name"] == "agent.run"
    assert sum(s["name"] == "agent.step" for s in by_id.values()) == 2
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.index("tool_started") < kinds.index("tool_finished")


def test_opentelemetry_export_mirrors_the_spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmkit.orchestrate.tracing import OpenTelemetryExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = Tracer(exporters=[OpenTelemetryExporter(provider)], opentelemetry=False)
    ReActAgent(ScriptedBackend([calc("1+1"), "2"]), [calculator], tracer=tracer).run("t")
    finished = memory.get_finished_spans()
    spans = {s.name: s for s in finished}
    assert set(spans) == {"agent.run", "agent.step", "model.call", "tool.call"}
    steps = {s.context.span_id for s in finished if s.name == "agent.step"}
    assert len(steps) == 2 and spans["tool.call"].parent.span_id in steps
    assert len({s.context.trace_id for s in finished}) == 1
    assert spans["tool.call"].attributes["llmkit.tool"] == "calculator"


def test_a_final_answer_beside_other_calls_waits_for_their_results():
    early = calc("12 * 34") + "\n" + hermes_call("final_answer", {"answer": "12 * 34"})
    backend = ScriptedBackend([early, hermes_call("final_answer", {"answer": "408"})])
    result = ReActAgent(backend, [calculator], tool_choice="required").run("12 * 34?")
    assert result.ok and result.answer == "408"
    assert [(e["name"], e["status"]) for e in result.tool_log[:2]] == [
        ("calculator", "ok"),
        ("final_answer", "not_run"),
    ]
    assert "call final_answer alone" in result.tool_log[1]["content"]


def test_an_empty_reply_is_not_an_answer():
    backend = ScriptedBackend(["", "  ", calc("1 + 1"), hermes_call("final_answer", {"answer": "2"})])
    result = ReActAgent(backend, [calculator], tool_choice="required").run("1 + 1?")
    assert result.ok and result.answer == "2" and result.steps == 4
    assert "call one of the tools (final_answer to finish)" in backend.calls[1].messages[-1]["content"]
    plain = ReActAgent(ScriptedBackend(["", "2"]), [calculator]).run("1 + 1?")
    assert plain.ok and plain.answer == "2" and plain.steps == 2
