"""Handoff checks, the hierarchical agent (strategic -> tactical -> operational) and the multi-agent
orchestrator, on scripted backends."""

from __future__ import annotations

import json

import pytest

from llmkit.context import Artifact, HandoffPacket
from llmkit.orchestrate import (
    CheckpointStore,
    HierarchicalAgent,
    MultiAgentOrchestrator,
    OrchestrateError,
    Specialist,
    calculator,
    check_handoff,
)
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call


def packet(task, context="", artifacts=()):
    return HandoffPacket(role="r", task=task, distilled_context=context, artifacts=list(artifacts))


def failed(checks):
    return {c.name for c in checks if not c.passed}


def test_the_three_checks():
    assert failed(check_handoff(packet("Compute the total salary of Sales."))) == set()
    assert failed(check_handoff(packet("word " * 61))) == {"summary"}
    assert failed(check_handoff(packet(""))) == {"summary"}
    assert failed(check_handoff(packet("Fix the bug as discussed."))) == {"fresh_context"}
    assert failed(check_handoff(packet("Sum it.", context="Use the result from step 2."))) == {"fresh_context"}
    siblings = {"sales_total": "objective 1"}
    assert failed(check_handoff(packet("Double sales_total."), sibling_outputs=siblings)) == {"independence"}
    given = packet("Double sales_total.", artifacts=[Artifact(name="sales_total", content="9")])
    assert failed(check_handoff(given, sibling_outputs=siblings)) == set()
    assert failed(check_handoff(packet("Double sales_totals_x."), sibling_outputs=siblings)) == set()


def objective(id, goal, produces, depends_on=(), context=""):
    return {"id": id, "goal": goal, "context": context, "depends_on": list(depends_on), "produces": produces}


def plan_for(instruction, produces, needs=()):
    steps = [{"id": 1, "instruction": instruction, "tools": ["calculator"], "needs": list(needs), "produces": [produces]}]  # fmt: skip
    return {"steps": steps}


class Strategist:
    """Scripted levels: decompositions in order; a plan per objective goal; operators compute `expression`."""

    def __init__(self, decompositions, plans, expressions):
        self.decompositions, self.plans, self.expressions = list(decompositions), plans, expressions
        self.prompts: dict[str, list[str]] = {"strategic": [], "tactical": [], "final": []}

    def __call__(self, messages):
        system, last = messages[0]["content"], messages[-1]["content"]
        if "Decompose the task" in system:
            self.prompts["strategic"].append(last)
            return json.dumps({"objectives": self.decompositions.pop(0)})
        if "Plan before acting" in system:
            self.prompts["tactical"].append(system)
            goal = system.split("# Task\n", 1)[1].split("\n", 1)[0]
            return json.dumps(self.plans[goal])
        if "Give the answer to the task" in last:
            self.prompts["final"].append("\n".join(m["content"] for m in messages))
            return json.dumps({"answer": "Sales 10200, Engineering 15500"})
        for instruction, expression in self.expressions.items():
            if f"# Task\n{instruction}" in system:
                results = [m for m in messages if m["role"] == "tool"]
                if not results:
                    return hermes_call("calculator", {"expression": expression})
                name = json.loads(system.split("JSON schema:\n", 1)[1].split("\n", 1)[0])["required"][0]
                return hermes_call("final_answer", {name: results[-1]["content"].split("\n")[1]})
        raise AssertionError(system[:300])


SALES = "Add the Sales salaries 5200 and 5000."
ENGINEERING = "Add the Engineering salaries 7400 and 8100."
PLANS = {
    SALES: plan_for("Compute 5200 + 5000 with the calculator.", "sales_total"),
    ENGINEERING: plan_for("Compute 7400 + 8100 with the calculator.", "engineering_total"),
}
EXPRESSIONS = {"Compute 5200 + 5000": "5200 + 5000", "Compute 7400 + 8100": "7400 + 8100"}
GOOD = [objective(1, SALES, "sales"), objective(2, ENGINEERING, "engineering")]


def test_hierarchy_runs_each_objective_through_a_checked_plan():
    script = Strategist([GOOD], PLANS, EXPRESSIONS)
    events = []
    result = HierarchicalAgent(ScriptedBackend(respond=script), [calculator], on_event=events.append).run("Salary totals?")  # fmt: skip
    assert result.ok and result.answer == "Sales 10200, Engineering 15500"
    assert result.values == {"sales": "10200", "engineering": "15500"}
    # the tactical planner's system prompt is the handoff packet, with only the objective in it
    assert "# Role\nYou plan and carry out one objective" in script.prompts["tactical"][0]
    assert ENGINEERING not in script.prompts["tactical"][0]
    assert "Subagent objective 1 finished: completed." in script.prompts["final"][0]
    checked = [e for e in events if e.kind == "handoff_checked"]
    assert len(checked) == 4 and all(not e.data["problems"] for e in checked)  # 2 objectives + 2 plan steps


def test_a_decomposition_whose_handoffs_fail_is_redone_then_refused():
    leaky = [objective(1, SALES, "sales"), objective(2, "Double sales and add the Engineering salaries.", "engineering")]  # fmt: skip
    script = Strategist([leaky, GOOD], PLANS, EXPRESSIONS)
    result = HierarchicalAgent(ScriptedBackend(respond=script), [calculator]).run("Salary totals?")
    assert result.ok
    assert "independence test: it uses 'sales', which objective 1 produces" in script.prompts["strategic"][1]

    vague = [objective(1, "Do what was mentioned earlier.", "x")]
    refused = HierarchicalAgent(ScriptedBackend(respond=Strategist([vague] * 2, PLANS, EXPRESSIONS)), [calculator], decompose_attempts=2).run("t")  # fmt: skip
    assert refused.stop_reason == "handoff_rejected" and "fresh_context test" in refused.detail


def test_a_dependent_objective_receives_its_input_as_an_artifact():
    double = "Double the sales total."
    plans = {**PLANS, double: plan_for("Compute sales times 2 with the calculator.", "doubled", needs=())}
    dependent = [objective(1, SALES, "sales"), objective(2, double, "doubled_sales", depends_on=[1])]
    expressions = {**EXPRESSIONS, "Compute sales times 2": "10200 * 2"}
    script = Strategist([dependent], plans, expressions)
    result = HierarchicalAgent(ScriptedBackend(respond=script), [calculator]).run("Double the sales total")
    assert result.ok and result.values["doubled_sales"] == "20400"
    assert '<artifact name="sales">\n10200\n</artifact>' in script.prompts["tactical"][1]


def test_hierarchy_resumes_inside_an_objective(tmp_path):
    calls = {"n": 0}

    def make(interrupt_on):
        script = Strategist([GOOD], PLANS, EXPRESSIONS)

        def respond(messages):
            calls["n"] += 1
            if interrupt_on is not None and interrupt_on in messages[0]["content"]:
                raise KeyboardInterrupt
            return script(messages)

        store = CheckpointStore(tmp_path / "h.db")
        return HierarchicalAgent(ScriptedBackend(respond=respond), [calculator], checkpoints=store)

    with pytest.raises(KeyboardInterrupt):
        make("# Task\nCompute 7400 + 8100").run("Salary totals?", run_id="h")
    before = calls["n"]
    result = make(None).resume("h")
    assert result.ok and result.values == {"sales": "10200", "engineering": "15500"}
    # engineering's operator (2 calls) and the final answer: neither sales nor engineering's plan is redone
    assert calls["n"] - before == 3


def test_multi_agent_delegates_with_fresh_contexts():
    seen = []

    def respond(messages):
        system = messages[0]["content"]
        if "You coordinate specialists" in system:
            results = [m for m in messages if m["role"] == "tool"]
            if not results:
                return hermes_call("ask_math", {"task": "Compute 17 * 23.", "context": "Use the calculator."})
            return f"The product is {results[-1]['content'].split('Summary: ')[1].split(chr(10))[0]}."
        seen.append(messages)
        if not any(m["role"] == "tool" for m in messages):
            return hermes_call("calculator", {"expression": "17 * 23"})
        return "391"

    math = Specialist("math", "does arithmetic with a calculator", [calculator])
    orchestrator = MultiAgentOrchestrator(ScriptedBackend(respond=respond), [math])
    result = orchestrator.run("What is 17 * 23? The secret word is PAPAYA.")
    assert result.ok and result.answer == "The product is 391."
    assert orchestrator.delegations[0]["result"]["status"] == "completed"
    specialist_view = json.dumps(seen[0])
    assert "PAPAYA" not in specialist_view and "# Task\\nCompute 17 * 23." in specialist_view  # fresh context
    assert result.usage.model_calls == 4  # 2 of the orchestrator + 2 of the specialist


def test_multi_agent_refuses_a_vague_handoff_and_the_orchestrator_can_fix_it():
    def respond(messages):
        if "You coordinate specialists" in messages[0]["content"]:
            results = [m for m in messages if m["role"] == "tool"]
            if not results:
                return hermes_call("ask_math", {"task": "Do the calculation as discussed."})
            if len(results) == 1:
                return hermes_call("ask_math", {"task": "Compute 2 + 2."})
            return "4"
        return "4"

    orchestrator = MultiAgentOrchestrator(ScriptedBackend(respond=respond), [Specialist("math", "arithmetic", [calculator])])  # fmt: skip
    result = orchestrator.run("2 + 2?")
    first, second = result.tool_log[0], result.tool_log[1]
    assert first["status"] == "error" and "handoff refused: fresh_context test" in first["content"]
    assert second["status"] == "ok" and result.answer == "4"


def test_specialists_need_a_description_and_the_orchestrator_needs_specialists():
    with pytest.raises(OrchestrateError, match="needs a description"):
        Specialist("math", " ")
    with pytest.raises(OrchestrateError, match="at least one specialist"):
        MultiAgentOrchestrator(ScriptedBackend(["x"]), [])


def test_a_malformed_decomposition_is_an_invalid_plan():
    twice = [objective(1, SALES, "total"), objective(2, ENGINEERING, "total", depends_on=[2])]
    script = Strategist([twice, twice], PLANS, EXPRESSIONS)
    result = HierarchicalAgent(ScriptedBackend(respond=script), [calculator], decompose_attempts=2).run("t")
    assert result.stop_reason == "invalid_plan"
    assert "two objectives produce 'total'" in result.detail and "depends on [2]" in result.detail
    assert "two objectives produce 'total'" in script.prompts["strategic"][1]  # fed back
