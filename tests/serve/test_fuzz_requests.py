"""Property-based fuzzing of the request models through a live server (hypothesis): valid bodies with
random fields replaced by random JSON, random extra keys, non-JSON bytes. Whatever arrives: never a
5xx, a 4xx always carries OpenAI's error shape with a message, and the server serves a good request
afterwards with no KV block leaked."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server import MODEL, LiveServer

from llmkit.serve.engine import Engine

EDGE_NUMBERS = [0, 1, -1, 2, 16, 17, 20, 21, 255, 256, 2**31 - 1, 2**31, 2**63, 2**64 - 1, 10**30, 0.5, -0.0, 1e-300]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from([*EDGE_NUMBERS, "tiny", "", "NaN", "inf", "user", "json_schema"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(st.sampled_from(EDGE_NUMBERS), json_values)  # edge numbers half of the time
token_ids = st.lists(
    st.one_of(st.integers(min_value=0, max_value=383), st.sampled_from([-1, 383, 384, 10**9, 2**31, 2**70, True])),
    min_size=1,
    max_size=6,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "wizard"])},
        optional={
            "content": st.one_of(st.text(max_size=20), json_values),
            "name": json_values,
            "tool_calls": json_values,
        },
    ),
    max_size=3,
)

COMMON = [
    "model", "temperature", "top_p", "n", "stream", "stream_options", "stop", "presence_penalty",
    "frequency_penalty", "seed", "user", "top_k", "min_p", "repetition_penalty", "ignore_eos", "max_tokens",
    "logprobs",
]  # fmt: skip
CHAT_FIELDS = [
    *COMMON, "messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "metadata", "store", "service_tier",
]  # fmt: skip
COMPLETION_FIELDS = [*COMMON, "prompt", "echo", "best_of"]


def mutated(base: dict, fields: list[str], special: dict):
    """`base` with some fields set to random JSON (or a field-specific strategy), some removed, and maybe
    an unknown key."""

    @st.composite
    def build(draw) -> dict:
        body = dict(base)
        for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
            body[name] = draw(special.get(name, field_values))
        for name in draw(st.lists(st.sampled_from(sorted(set(body) - {"max_tokens"})), max_size=1)):
            del body[name]  # max_tokens stays bounded so that a valid body generates a few tokens only
        if draw(st.booleans()) and draw(st.booleans()):
            body[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        return body

    return build()


# Valid lengths stay short (the fuzzing is about validation, not generation); invalid ones range widely.
lengths = st.one_of(st.integers(min_value=-2, max_value=8), st.sampled_from([2**31, 10**30, "5", 1.5, True, [], {}]))
CHAT_BASE = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COMPLETION_BASE = {"model": MODEL, "prompt": [5, 6, 7], "max_tokens": 2}
chat_bodies = mutated(
    CHAT_BASE,
    CHAT_FIELDS,
    {"messages": messages | json_values, "max_tokens": lengths, "max_completion_tokens": lengths},
)
completion_bodies = mutated(
    COMPLETION_BASE,
    COMPLETION_FIELDS,
    {
        "prompt": st.one_of(
            token_ids, st.lists(token_ids, max_size=3), st.lists(st.text(max_size=5), max_size=3), json_values
        )
    },
)


@pytest.fixture(scope="module")
def fuzzed(tiny):
    server = LiveServer(Engine(tiny, num_blocks=256, max_num_seqs=64), max_body_bytes=64 * 1024, max_waiting=256)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield server, http
    server.stop()


def check_response(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"], error
        return
    assert response.status_code == 200
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]")
        for line in response.text.splitlines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                assert event.get("error", {}).get("type") != "server_error", event  # a stream's own 5xx


def post(http: httpx.Client, path: str, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return http.post(path, content=content, headers={"Content-Type": "application/json"})


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=chat_bodies)
def test_fuzzed_chat_requests(fuzzed, body):
    _, http = fuzzed
    check_response(post(http, "/v1/chat/completions", body))


@FUZZ
@given(body=completion_bodies)
def test_fuzzed_completion_requests(fuzzed, body):
    _, http = fuzzed
    check_response(post(http, "/v1/completions", body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())))
def test_fuzzed_raw_bodies(fuzzed, body):
    _, http = fuzzed
    for path in ("/v1/chat/completions", "/v1/completions"):
        check_response(post(http, path, body))


def test_the_server_still_serves_after_the_fuzzing(fuzzed):
    server, http = fuzzed
    response = http.post("/v1/chat/completions", json={**CHAT_BASE, "temperature": 0})
    assert response.status_code == 200 and response.json()["choices"][0]["finish_reason"] == "length"
    server.wait_idle()
