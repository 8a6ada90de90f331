"""Plan-and-execute on a scripted backend: the plan's shape, step re-injection, validation checkpoints,
replanning and its limit, handoff checks, run limits, and resuming mid-step."""

from __future__ import annotations

import json

import pytest

from llmkit.orchestrate import CheckpointStore, Limits, PlanAndExecuteAgent, PlanError, calculator, tool
from llmkit.orchestrate.plan import Plan, PlanBounds, plan_problems, plan_schema_model, validate_plan
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call


def step(id, instruction, produces, needs=(), tools=("calculator",)):
    return {
        "id": id,
        "instruction": instruction,
        "tools": list(tools),
        "needs": list(needs),
        "produces": list(produces),
    }


TWO_STEPS = {
    "steps": [
        step(1, "Compute 12 * 34 with the calculator.", ["product"]),
        step(2, "Add 10 to product.", ["answer"], needs=["product"]),
    ]
}
ARITHMETIC = {"Compute 12 * 34": ("12 * 34", "product"), "Add 10 to product": ("408 + 10", "answer")}


class Script:
    """Plans come from `plans` in order; an operator calls the calculator once, then final_answer with the
    result (or `answers[step instruction]` when given)."""

    def __init__(self, plans, answers=None, interrupt=None):
        self.plans, self.answers, self.interrupt = list(plans), answers or {}, interrupt
        self.planner_prompts: list[str] = []
        self.operator_calls: list[list[dict]] = []

    def __call__(self, messages):
        system = messages[0]["content"]
        if "Plan before acting" in system:
            self.planner_prompts.append(messages[-1]["content"])
            return json.dumps(self.plans.pop(0))
        self.operator_calls.append(messages)
        if self.interrupt is not None and self.interrupt(messages):
            raise KeyboardInterrupt
        for key, (expression, name) in ARITHMETIC.items():
            if f"# Task\n{key}" in system:
                results = [m for m in messages if m["role"] == "tool"]
                if not results:
                    return hermes_call("calculator", {"expression": expression})
                value = self.answers.get(key, results[-1]["content"].split("\n")[1])
                return hermes_call("final_answer", {name: value})
        raise AssertionError(f"unexpected operator prompt: {system[:200]}")


def agent(script, **options):
    return PlanAndExecuteAgent(ScriptedBackend(respond=script), [calculator], **options)


def test_plan_runs_step_by_step_with_its_step_re_injected():
    script = Script([TWO_STEPS])
    events = []
    result = agent(script, on_event=events.append).run("What is 12 * 34 + 10?")
    assert result.ok and result.answer == "418" and result.values == {"product": "408", "answer": "418"}
    first_call, second_call = script.operator_calls[0], script.operator_calls[1]
    assert first_call[-1]["content"] == "Do plan step 1: Compute 12 * 34 with the calculator."
    assert second_call[-1]["content"].startswith("Current plan step 1: Compute 12 * 34")  # re-injected
    step2 = script.operator_calls[2][0]["content"]
    assert '<artifact name="product">\n408\n</artifact>' in step2  # step 2 gets what step 1 produced
    kinds = [e.kind for e in events]
    assert kinds.count("plan_made") == 1 and kinds.count("handoff_checked") == 2 and "replanned" not in kinds


def test_each_step_sees_only_its_tools():
    @tool
    def search(query: str) -> str:
        """Search."""
        return "x"

    script = Script([TWO_STEPS])
    backend = ScriptedBackend(respond=script)
    PlanAndExecuteAgent(backend, [calculator, search]).run("t")
    operator_tools = {tuple(t["function"]["name"] for t in c.tools) for c in backend.calls if c.tools}
    assert operator_tools == {("calculator", "final_answer")}


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([step(1, "a", ["x"]), step(2, "b", ["y"]), step(3, "c", ["z"])], "it must have 1 to 2"),
        ([step(2, "a", ["x"])], "has id 2"),
        ([step(1, "a", ["x"], tools=["shell"])], "unknown tools ['shell']"),
        ([step(1, "a", ["x"], needs=["y"])], "needs ['y'], which no earlier step produces"),
        ([step(1, "a", ["x"]), step(2, "b", ["x"])], "both produce 'x'"),
    ],
)
def test_plan_shape_is_validated(steps, problem):
    plan = Plan.model_validate({"steps": steps})
    assert any(problem in p for p in plan_problems(plan, PlanBounds(1, 2), ["calculator"]))
    with pytest.raises(PlanError, match="invalid plan"):
        validate_plan(plan, PlanBounds(1, 2), ["calculator"])


def test_an_invalid_plan_is_retried_with_the_problem_then_refused():
    bad = {"steps": [step(1, "Compute 12 * 34 with the calculator.", ["product"], needs=["nothing"])]}
    script = Script([bad, TWO_STEPS])
    assert agent(script).run("t").ok
    assert "needs ['nothing'], which no earlier step produces" in script.planner_prompts[1]

    result = agent(Script([bad, bad, bad]), plan_attempts=3).run("t")
    assert result.stop_reason == "invalid_plan" and "no valid plan in 3 attempts" in result.detail


def test_a_failed_checkpoint_replans_the_remaining_work():
    checks = []

    def check(plan_step, produced, values):
        checks.append(dict(produced))
        if produced.get("product") == "408" and len(checks) == 1:
            return "the product must be double-checked"
        return None

    replacement = {"steps": [step(1, "Compute 12 * 34 with the calculator.", ["product"]), step(2, "Add 10 to product.", ["answer"], needs=["product"])]}  # fmt: skip
    script = Script([TWO_STEPS, replacement])
    events = []
    result = agent(script, check=check, on_event=events.append).run("What is 12 * 34 + 10?")
    assert result.ok and result.answer == "418"
    assert [e.kind for e in events].count("replanned") == 1
    assert "step 1 failed its check: the product must be double-checked" in script.planner_prompts[1]
    assert [h["event"] for h in result.history] == ["plan", "checkpoint_failed", "replan", "plan", "step_done", "step_done"]  # fmt: skip
    # every model call is counted once: 2 plans, 2 calls per operator, 3 operator runs
    assert result.usage.model_calls == 2 + 2 * 3


def test_an_error_value_fails_the_checkpoint_and_replanning_is_bounded():
    script = Script([TWO_STEPS] * 3, answers={"Compute 12 * 34": "error: no idea"})
    result = agent(script, max_replans=2).run("t")
    assert result.stop_reason == "replan_limit" and "replanned 2 times" in result.detail
    assert "produced 'product' as an error" in result.detail
    assert len(script.planner_prompts) == 3


def test_a_step_that_runs_out_of_steps_is_replanned():
    stuck = {"steps": [step(1, "Compute 12 * 34 with the calculator.", ["product"])]}

    def respond(messages):
        if "Plan before acting" in messages[0]["content"]:
            return json.dumps(stuck)
        n = sum(m["role"] == "assistant" for m in messages)
        return hermes_call("calculator", {"expression": f"{n} + 1"})

    result = PlanAndExecuteAgent(ScriptedBackend(respond=respond), [calculator], step_max_steps=2, max_replans=1).run("t")  # fmt: skip
    assert result.stop_reason == "replan_limit"
    assert "step 1 ended without its values (max_steps" in result.detail


def test_a_handoff_that_needs_unseen_context_is_replanned():
    vague = {"steps": [step(1, "Compute 12 * 34 with the calculator.", ["product"]), step(2, "Add 10 to the previous result.", ["answer"], needs=["product"])]}  # fmt: skip
    script = Script([vague, TWO_STEPS])
    result = agent(script).run("What is 12 * 34 + 10?")
    assert result.ok and result.answer == "418"
    assert "fresh_context test" in script.planner_prompts[1] and "'the previous result'" in script.planner_prompts[1]


def test_the_run_limits_cover_all_steps():
    result = agent(Script([TWO_STEPS]), limits=Limits(max_steps=3)).run("t")
    assert result.stop_reason == "max_steps" and result.steps == 3 and result.values == {"product": "408"}
    tokens = agent(Script([TWO_STEPS]), limits=Limits(max_steps=20, max_tokens=300)).run("t")
    assert tokens.stop_reason == "max_tokens" and tokens.usage.total_tokens >= 300


def test_an_interrupted_plan_resumes_inside_its_step(tmp_path):
    executed = []

    @tool
    def calc(expression: str) -> str:
        """Arithmetic."""
        executed.append(expression)
        return calculator.invoke({"expression": expression})

    def make(interrupt=None):
        script = Script([TWO_STEPS], interrupt=interrupt)
        backend = ScriptedBackend(respond=script)
        tools = [tool(calc.function, name="calculator")]
        return PlanAndExecuteAgent(backend, tools, checkpoints=CheckpointStore(tmp_path / "plan.db"), seed=3)

    # interrupt step 2's operator after its tool call, before its final answer
    second_step_answer = lambda m: "# Task\nAdd 10" in m[0]["content"] and any(x["role"] == "tool" for x in m)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        make(second_step_answer).run("What is 12 * 34 + 10?", run_id="p")
    assert executed == ["12 * 34", "408 + 10"]
    result = make().resume("p")
    assert result.ok and result.answer == "418" and executed == ["12 * 34", "408 + 10"]
    assert result.values == {"product": "408", "answer": "418"}


def test_plan_and_decomposition_schemas_compile_to_grammars():
    """Constrained decoding builds a grammar from these schemas; long maxLength bounds are left to pydantic
    (with them the plan schema passed the compiler's 60000-state limit on the default model)."""
    from llmkit.core.structured import GrammarError, StructuredOutput, compile_structured
    from llmkit.orchestrate.hierarchy import decomposition_model
    from llmkit.orchestrate.model import decoding_schema

    plan = plan_schema_model(PlanBounds(1, 6), ["calculator", "sql_query"]).model_json_schema()
    with pytest.raises(GrammarError, match="too large"):
        compile_structured(StructuredOutput("json_schema", plan))
    for schema in (plan, decomposition_model(4).model_json_schema()):
        compile_structured(StructuredOutput("json_schema", decoding_schema(schema)))
