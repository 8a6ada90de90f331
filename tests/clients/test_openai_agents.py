"""The OpenAI Agents SDK (`openai-agents`), unchanged, against a real `llmkit serve` on loopback serving the
default model (run by the nox session `client_agents`, which installs the SDK): an Agent with one
`@function_tool`, run through `OpenAIChatCompletionsModel`. SmolLM2's template has no tool slot, so this
goes through the server's generic tool-call format; the tool runs with schema-valid arguments, its result
goes back to the model, and the run ends with a final answer. No network beyond loopback, no tracing."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("agents", reason="openai-agents is installed by the nox session client_agents")

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI
from served import llmkit_serve

CITIES = {"paris", "london", "rome", "berlin", "madrid"}


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    """`llmkit serve` (the default model) on loopback; (base url, model name)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ("--model", str(smollm2_path), "--embedding-model", "none")
    with llmkit_serve(*args, log=log, env={"OMP_NUM_THREADS": "1"}) as served:
        yield served


def test_an_agent_runs_a_function_tool_on_the_default_model(server):
    url, name = server
    set_tracing_disabled(True)
    calls: list[tuple[str, int]] = []

    @function_tool
    def get_weather(city: str, days: int) -> str:
        """The weather forecast for a city.

        Args:
            city: The city's name.
            days: How many days ahead, 1 to 7.
        """
        calls.append((city, days))
        return f"{city}: sunny, 24 C, for the next {days} days."

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    settings = ModelSettings(tool_choice="required", parallel_tool_calls=False, temperature=0, max_tokens=200)
    # SmolLM2-135M answers in text when a call is optional, and calls the tool again (every turn, up to
    # max_turns) when it is offered after a result: the first turn requires the call and the run stops
    # on the tool's output; a second run then gives the model the whole history with tools off.
    agent = Agent(
        name="forecaster",
        instructions="You answer questions about the weather. Use the get_weather tool.",
        tools=[get_weather],
        model=OpenAIChatCompletionsModel(model=name, openai_client=client),
        model_settings=settings,
        tool_use_behavior="stop_on_first_tool",
    )
    answer = agent.clone(model_settings=settings.resolve(ModelSettings(tool_choice="none")))

    async def run_both():  # one event loop for the client's connections
        result = await Runner.run(agent, "What is the weather in Paris for the next 3 days?", max_turns=2)
        return result, await Runner.run(answer, result.to_input_list(), max_turns=1)

    result, final = asyncio.run(run_both())
    assert len(calls) == 1, calls
    city, days = calls[0]
    assert city.lower() in CITIES and 1 <= days <= 7, calls  # the SDK parsed them with the tool's schema
    assert [item.type for item in result.new_items] == ["tool_call_item", "tool_call_output_item"]
    assert result.final_output == f"{city}: sunny, 24 C, for the next {days} days."
    assert len(calls) == 1 and [item.type for item in final.new_items] == ["message_output_item"]
    assert isinstance(final.final_output, str) and final.final_output.strip()
