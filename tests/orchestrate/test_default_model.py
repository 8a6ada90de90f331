"""End to end on the default model (SmolLM2-135M-Instruct on the llmkit-serve engine, found by name through
the backend hook): constrained tool calls parse and execute, and the final answer uses the result. Two tasks
of benchmarks/orchestrate_tasks.py, set up as the benchmark sets them up; the CLI narrates a run live.
Run by nox session orchestrate_model, which also builds the native kernels: with the pure-Python grammar
matcher each constrained task takes minutes instead of seconds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llmkit.core.backends import open_backend
from llmkit.core.cli import main
from llmkit.core.plugins import registry
from llmkit.core.sampling import SamplingParams
from llmkit.orchestrate import Limits, ReActAgent, SqlToolbox, calculator

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "orchestrate_tasks.py"

if "engine" not in registry("backends").names():
    pytest.skip(
        "the engine backend is not installed (llmkit-serve); nox session orchestrate_model runs these",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("orchestrate_tasks", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engine(smollm2_path):
    # float32 activations: these tests assert one greedy run of a 135M model, and the int8 path's greedy ids move
    # at near-ties whenever a kernel sums in another order (a new decode-attention kernel turned the first call
    # here from `calculator` into `final_answer`); float32 activations follow core's float32 reference.
    # benchmarks/orchestrate_tasks.py measures the default (int8) path over its whole task set.
    return open_backend("engine", model=str(smollm2_path), chat_template="chatml", activations="float32")


@pytest.fixture(scope="module")
def database(bench, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "company.db"
    bench.build_database(path)
    return path


def run_task(bench, engine, database, question, tool_name):
    with SqlToolbox(str(database)) as sql:
        agent = ReActAgent(
            engine,
            [calculator if tool_name == "calculator" else sql.sql_query],
            system_prompt=bench.SYSTEM,
            params=SamplingParams(temperature=0.0, max_tokens=128),
            tool_choice="required",
            parallel_tool_calls=False,
            examples=bench.EXAMPLES,
            limits=Limits(max_steps=4),
        )
        assert agent.model.constrain  # the engine constrains tool calls to the tools' schemas
        return agent.run(question)


@pytest.mark.parametrize(
    ("question", "expected", "tool_name"),
    [("What is 81234 divided by 6?", "13539", "calculator"), ("How many employees are there?", "12", "sql_query")],
)
def test_a_tool_call_parses_executes_and_the_answer_uses_it(bench, engine, database, question, expected, tool_name):
    result = run_task(bench, engine, database, question, tool_name)
    executed = [e for e in result.tool_log if e["name"] == tool_name and e["status"] == "ok"]
    assert executed and bench.mentions(executed[0]["content"], expected), result.tool_log
    assert result.ok and bench.mentions(result.answer, expected), (result.answer, result.detail)


def test_agent_run_narrates_live_progress(smollm2_path, capsys):
    """One step of `llmkit agent run` on the engine: the constrained call is shown, run, and its result shown."""
    limits = ["--tool-choice", "required", "--no-parallel", "--max-steps", "1", "--max-new-tokens", "128"]
    code = main(["agent", "run", "What is 12 * 34?", "--tools", "calculator", "--model", str(smollm2_path), *limits])
    out, err = capsys.readouterr()
    lines = [line.strip() for line in err.strip().splitlines() if not line.startswith("llmkit: ")]  # startup lines
    assert lines[0].startswith("agent run ") and lines[0].endswith("What is 12 * 34?")
    assert lines[1:4] == ["step 1: calculator", '→ calculator {"expression": "12 * 34"}', "← ok 408"], err
    assert lines[-1] == "agent max_steps: reached the limit of 1 steps"
    assert code == 1 and out == ""  # no answer within one step: nothing on stdout, a non-zero exit
