"""`llmkit serve` on loopback with a real uvicorn: the openai client, streaming, every error path,
auth, overload, and disconnects that must free their KV blocks."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app

MODEL = "tiny"


class LiveServer:
    def __init__(self, engine: Engine, **options):
        self.engine = engine
        self.server = Server(engine, MODEL, **options)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(create_app(self.server), host="127.0.0.1", port=self.port, log_level="error")
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.uvicorn.should_exit = True
        self.thread.join(timeout=10)

    def wait_idle(self, timeout=20.0):
        """Block until the engine holds no request and every KV block is free."""
        deadline = time.monotonic() + timeout
        manager = self.engine.block_manager
        while time.monotonic() < deadline:
            if not self.engine.requests and manager.num_free_blocks == manager.num_blocks:
                return
            time.sleep(0.05)
        raise AssertionError(
            f"leaked: {len(self.engine.requests)} requests, {manager.num_blocks - manager.num_free_blocks} blocks"
        )


@pytest.fixture(scope="module")
def live(tiny):
    server = LiveServer(Engine(tiny, num_blocks=512, max_num_seqs=64), max_body_bytes=64 * 1024, max_waiting=64)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "The quick brown fox"}], "max_tokens": 8, **extra}


def test_models_health_and_metrics(live, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(f"{live.url}/health").json() == {"status": "ok"}
    metrics = httpx.get(f"{live.url}/metrics").text
    for name in (
        "llmkit_time_to_first_token_seconds",
        "llmkit_inter_token_latency_seconds",
        "llmkit_request_latency_seconds",
        "llmkit_requests_running",
        "llmkit_requests_waiting",
        "llmkit_kv_cache_usage_ratio",
        "llmkit_prefix_cache_hit_ratio",
        "llmkit_preemptions_total",
    ):
        assert name in metrics


def test_chat_completion_with_the_openai_client(live, client):
    response = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=6,
        temperature=0,
        n=2,
        logprobs=True,
        top_logprobs=2,
        seed=3,
    )
    assert len(response.choices) == 2 and response.choices[0].finish_reason in ("length", "stop")
    assert response.usage.prompt_tokens == len(
        live.engine.pretrained.chat_prompt([{"role": "user", "content": "hello"}])
    )
    assert response.usage.completion_tokens == sum(len(c.logprobs.content) for c in response.choices)
    assert len(response.choices[0].logprobs.content[0].top_logprobs) == 2
    assert response.choices[0].message.content == response.choices[1].message.content  # greedy


def test_streaming_chat_matches_the_full_response(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "stream me"}], max_tokens=10, temperature=0)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_completions_with_several_prompts(client):
    response = client.completions.create(
        model=MODEL, prompt=["The quick", "1 + 1 ="], max_tokens=5, temperature=0, n=2, logprobs=1
    )
    assert sorted(c.index for c in response.choices) == [0, 1, 2, 3]
    assert all(len(c.logprobs.tokens) == 5 for c in response.choices)
    streamed = list(
        client.completions.create(
            model=MODEL, prompt=["The quick", "1 + 1 ="], max_tokens=5, temperature=0, stream=True
        )
    )
    by_index: dict[int, str] = {}
    for chunk in streamed:
        for choice in chunk.choices:
            by_index[choice.index] = by_index.get(choice.index, "") + choice.text
    assert by_index[0] == response.choices[0].text and by_index[1] == response.choices[2].text


@pytest.mark.parametrize(
    "body,status,code,words",
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_json", "JSON object"),
        (json.dumps(chat(model="gpt-4")).encode(), 404, "model_not_found", "'gpt-4' does not exist"),
        (json.dumps(chat(temperature=3)).encode(), 400, "invalid_value", "'temperature'"),
        (json.dumps(chat(logit_bias={"1": 5})).encode(), 400, "unsupported_parameter", "'logit_bias' is not supported"),
        (
            json.dumps(chat(max_tokens=250)).encode(),
            400,
            "context_length_exceeded",
            "maximum context length is 256 tokens; you requested",
        ),
        (json.dumps({"model": MODEL}).encode(), 400, "missing_parameter", "'messages' is required"),
        (
            json.dumps(chat(messages=[{"role": "wizard", "content": "x"}])).encode(),
            400,
            "invalid_value",
            "messages.0.role",
        ),
        (
            json.dumps(chat(messages=[{"role": "user", "content": "x" * 70_000}])).encode(),
            413,
            "body_too_large",
            "exceeds the limit",
        ),
    ],
)
def test_bad_requests_get_openai_style_errors(live, body, status, code, words):
    response = httpx.post(f"{live.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]


def test_context_error_states_both_numbers(live):
    prompt_tokens = len(live.engine.pretrained.chat_prompt(chat()["messages"]))
    error = httpx.post(f"{live.url}/v1/chat/completions", json=chat(max_tokens=250)).json()["error"]
    assert (
        f"you requested {prompt_tokens + 250} ({prompt_tokens} in the prompt, 250 for the completion)"
        in error["message"]
    )


def test_api_key_is_required_when_set(tiny):
    server = LiveServer(Engine(tiny, num_blocks=64), api_key="s3cret")
    try:
        assert httpx.post(f"{server.url}/v1/chat/completions", json=chat()).status_code == 401
        wrong = httpx.post(f"{server.url}/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        right = openai.OpenAI(base_url=f"{server.url}/v1", api_key="s3cret", max_retries=0)
        assert right.chat.completions.create(**chat()).choices[0].message.content is not None
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        server.stop()


def test_overload_answers_503_with_retry_after(tiny):
    server = LiveServer(Engine(tiny, num_blocks=64, max_num_seqs=1), max_waiting=1)
    try:

        async def burst():
            async with httpx.AsyncClient(timeout=60) as http:
                return await asyncio.gather(
                    *(http.post(f"{server.url}/v1/chat/completions", json=chat(max_tokens=40)) for _ in range(12))
                )

        responses = asyncio.run(burst())
        refused = [r for r in responses if r.status_code == 503]
        assert refused and all(
            r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded" for r in refused
        )
        assert any(r.status_code == 200 for r in responses)
        server.wait_idle()
    finally:
        server.stop()


def test_disconnect_mid_stream_aborts_and_frees_blocks(live):
    with httpx.stream(
        "POST", f"{live.url}/v1/chat/completions", json=chat(max_tokens=200, stream=True, ignore_eos=True), timeout=30
    ) as response:
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
    live.wait_idle()


def test_200_concurrent_streams_with_random_disconnects_leak_nothing(live):
    rng = random.Random(0)

    async def one(http: httpx.AsyncClient, i: int) -> int:
        cut = rng.choice([None, 0, 2, 5])
        body = chat(max_tokens=rng.randint(4, 24), stream=True, ignore_eos=True, seed=i, temperature=0.8)
        async with http.stream("POST", f"{live.url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return response.status_code
            seen = 0
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                    if cut is not None and seen > cut:
                        return -1  # leaving the block closes the connection mid-stream
        return 200

    async def crowd():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            return await asyncio.gather(*(one(http, i) for i in range(200)))

    live.server.async_engine.max_waiting = 400
    results = asyncio.run(crowd())
    assert results.count(200) + results.count(-1) == 200
    live.wait_idle(timeout=60)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_later_prompt_refused_with_503_cancels_the_admitted_ones(tiny, stream):
    """Prompt 0 is admitted, a later one finds the queue full: the admitted prompt is aborted (its
    blocks freed) rather than generating for nobody."""
    engine = Engine(tiny, num_blocks=64, max_num_seqs=1)
    server = LiveServer(engine, max_waiting=1)
    aborted: list[str] = []
    abort = engine.abort

    def recording_abort(request_id: str) -> bool:
        aborted.append(request_id)
        return abort(request_id)

    engine.abort = recording_abort
    try:
        prompts = [[5, 6, 7], [8, 9, 10], [11, 12, 13]]
        body = {"model": MODEL, "prompt": prompts, "max_tokens": 200, "ignore_eos": True, "stream": stream}
        response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)
        if stream:
            events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
            assert response.text.rstrip().endswith("data: [DONE]")
            error = events[-1]["error"]
        else:
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            error = response.json()["error"]
        assert error["code"] == "overloaded" and error["type"] == "server_error"
        server.wait_idle(timeout=10)
        assert any(r.endswith("-0") for r in aborted), aborted  # ended by abort, not by running to the end
    finally:
        server.stop()


def test_a_body_that_stops_arriving_gets_408(tiny):
    server = LiveServer(Engine(tiny, num_blocks=16), body_timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            started = time.monotonic()
            reply = conn.makefile("rb")
            status = reply.readline().split()[1]
            headers = dict(line.decode().strip().lower().split(": ", 1) for line in iter(reply.readline, b"\r\n"))
            body = reply.read(int(headers["content-length"]))
        assert status == b"408" and time.monotonic() - started < 5
        assert json.loads(body)["error"]["code"] == "body_timeout"
    finally:
        server.stop()


def test_unknown_routes_and_methods_answer_in_openai_shape(live):
    for response, status in (
        (httpx.get(f"{live.url}/v2/nothing"), 404),
        (httpx.get(f"{live.url}/v1/completions"), 405),
    ):
        assert response.status_code == status
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
