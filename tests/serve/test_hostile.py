"""Hostile clients against a real server on loopback: while 16 long greedy streams run, every class of
bad input, slow clients, mid-stream disconnects and a 503 storm. The long streams finish with the
tokens they have undisturbed, every bad request gets a 4xx in OpenAI's error shape, no block leaks.
Every loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx
import pytest
from test_server import MODEL, LiveServer

from llmkit.core import SamplingParams
from llmkit.serve.engine import Engine

LONG_TOKENS = 150
GREEDY = SamplingParams(temperature=0, max_tokens=LONG_TOKENS, ignore_eos=True)


@pytest.fixture(scope="module")
def hostile(tiny):
    engine = Engine(tiny, num_blocks=512, max_num_seqs=24)
    server = LiveServer(engine, max_body_bytes=32 * 1024, max_waiting=64, body_timeout=3.0)
    yield server
    server.stop()


def long_streams(engine: Engine) -> list[tuple[str, dict, list[int]]]:
    """16 long greedy streams (8 chat, 8 token-id completions): (path, body, prompt token ids)."""
    rng = random.Random(16)
    streams = []
    for i in range(8):
        messages = [
            {"role": "user", "content": f"tell story {i} about " + " ".join(str(rng.random()) for _ in range(2))}
        ]
        body = {"model": MODEL, "messages": messages, "max_tokens": LONG_TOKENS, "temperature": 0}
        streams.append(("/v1/chat/completions", body, engine.pretrained.chat_prompt(messages)))
    for _ in range(8):
        ids = [rng.randrange(3, 384) for _ in range(rng.randint(5, 40))]
        body = {"model": MODEL, "prompt": ids, "max_tokens": LONG_TOKENS, "temperature": 0}
        streams.append(("/v1/completions", body, ids))
    for _, body, _ in streams:
        body.update(stream=True, ignore_eos=True, stream_options={"include_usage": True})
    return streams


def undisturbed_texts(tiny, prompts: list[list[int]]) -> list[str]:
    """What each stream produces with nobody else around (a fresh engine; batched greedy equals each
    prompt run alone, which test_engine.py proves against core's generate)."""
    outputs = Engine(tiny, num_blocks=256).generate(prompts, GREEDY, progress=False)
    return [o.completions[0].text for o in outputs]


async def read_stream(http: httpx.AsyncClient, url: str, body: dict, stop_after: int | None = None):
    """(text, usage, error event or None) of one SSE stream, which must end with [DONE];
    with `stop_after`, hang up after that many data lines."""
    text, usage, error, seen = "", None, None, 0
    async with http.stream("POST", url, json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            seen += 1
            if line == "data: [DONE]":
                return text, usage, error
            chunk = json.loads(line[6:])
            error = chunk.get("error", error)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                text += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
            if stop_after is not None and seen >= stop_after:
                return text, usage, None  # leaving the block closes the connection mid-stream
    raise AssertionError(f"the stream ended without [DONE] after {seen} events")


def assert_openai_error(response: httpx.Response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    return error


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
COMPLETION = {"model": MODEL, "prompt": [5, 6, 7], "max_tokens": 4}


def _chat(**changes) -> bytes:
    return json.dumps({**CHAT, **changes}).encode()


def _completion(**changes) -> bytes:
    return json.dumps({**COMPLETION, **changes}).encode()


BAD_INPUTS: list[tuple[str, str, bytes]] = [
    # token ids outside the vocabulary (384 for the tiny model) or not ids at all
    ("ids", "/v1/completions", _completion(prompt=[[-1]])),
    ("ids", "/v1/completions", _completion(prompt=[[10**9]])),
    ("ids", "/v1/completions", _completion(prompt=[[1, 2], [3, 384]])),
    ("ids", "/v1/completions", _completion(prompt=[2**70])),
    ("ids", "/v1/completions", _completion(prompt=[True, False])),
    ("ids", "/v1/completions", _completion(prompt=[[1.5]])),
    ("ids", "/v1/completions", _completion(prompt=[[]])),
    ("ids", "/v1/completions", _completion(prompt=[])),
    ("ids", "/v1/completions", _completion(prompt=["a", [1]])),
    ("ids", "/v1/completions", _completion(prompt=["x"] * 300)),
    # huge, negative, non-finite numbers
    ("numbers", "/v1/chat/completions", _chat(top_k=2**64 - 1)),
    ("numbers", "/v1/chat/completions", _chat(top_k=-1)),
    ("numbers", "/v1/chat/completions", _chat(top_k=10**30)),
    ("numbers", "/v1/chat/completions", _chat(temperature=-1)),
    ("numbers", "/v1/chat/completions", _chat(temperature="NaN")),
    ("numbers", "/v1/chat/completions", _chat(temperature="inf")),
    ("numbers", "/v1/chat/completions", _chat()[:-1] + b', "temperature": NaN}'),
    ("numbers", "/v1/chat/completions", _chat()[:-1] + b', "top_p": 1e400}'),
    ("numbers", "/v1/chat/completions", _chat(max_tokens=-5)),
    ("numbers", "/v1/chat/completions", _chat(max_tokens=0)),
    ("numbers", "/v1/chat/completions", _chat(max_tokens=10**30)),
    ("numbers", "/v1/completions", _completion(max_tokens=2**31)),
    ("numbers", "/v1/chat/completions", _chat(n=0)),
    ("numbers", "/v1/chat/completions", _chat(n=10**20)),
    ("numbers", "/v1/chat/completions", _chat(seed=2**70)),
    ("numbers", "/v1/chat/completions", _chat(repetition_penalty=0)),
    ("numbers", "/v1/chat/completions", _chat(repetition_penalty=1e300)),
    ("numbers", "/v1/chat/completions", _chat(top_p=0)),
    ("numbers", "/v1/chat/completions", _chat(presence_penalty=3)),
    ("numbers", "/v1/chat/completions", _chat(min_p=-0.5)),
    ("numbers", "/v1/chat/completions", _chat(logprobs=True, top_logprobs=21)),
    ("numbers", "/v1/completions", _completion(logprobs=-1)),
    # wrong types and shapes
    ("types", "/v1/chat/completions", _chat(messages="hi")),
    ("types", "/v1/chat/completions", _chat(messages=[1])),
    ("types", "/v1/chat/completions", _chat(messages=[])),
    ("types", "/v1/chat/completions", _chat(model=5)),
    ("types", "/v1/chat/completions", _chat(stop=7)),
    ("types", "/v1/chat/completions", _chat(stop=["", "x"])),
    ("types", "/v1/chat/completions", _chat(stream=[1])),
    ("types", "/v1/chat/completions", _chat(max_tokens="many")),
    ("types", "/v1/completions", _completion(prompt={"text": "x"})),
    ("types", "/v1/completions", _completion(prompt=None)),
    ("types", "/v1/chat/completions", b"[]"),
    ("types", "/v1/chat/completions", b"null"),
    ("types", "/v1/chat/completions", b'"just a string"'),
    ("types", "/v1/chat/completions", b""),
    ("types", "/v1/chat/completions", b"\xff\xfe\x00garbage"),
    ("types", "/v1/chat/completions", b"[" * 5000 + b"]" * 5000),
    ("types", "/v1/chat/completions", _chat(model="m" * 20_000)),
    # bodies over the limit (32 KiB here)
    ("huge", "/v1/chat/completions", _chat(messages=[{"role": "user", "content": "x" * 40_000}])),
    ("huge", "/v1/completions", _completion(prompt=list(range(1, 300)) * 40)),
]


async def post_bad(http: httpx.AsyncClient, url: str, path: str, body: bytes) -> dict:
    response = await http.post(url + path, content=body, headers={"Content-Type": "application/json"})
    return assert_openai_error(response)


async def post_chunked_huge(http: httpx.AsyncClient, url: str) -> dict:
    """No Content-Length: the limit holds on the bytes as they arrive."""

    async def body():
        for _ in range(5):
            yield b" " * 8192

    response = await http.post(url + "/v1/chat/completions", content=body())
    return assert_openai_error(response, 413)


async def slow_headers(port: int, stop: asyncio.Event) -> None:
    """Slowloris: headers one byte at a time, never finished, held until the test ends (bounded)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 400
        for byte in head:
            if stop.is_set():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
    finally:
        writer.close()


async def slow_body(port: int) -> tuple[int, dict]:
    """Headers complete, then a trickle of body that stops: the server answers 408 after its body timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n" + b'{"model": "tiny"'
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=15)
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
        )
        payload = await asyncio.wait_for(reader.readexactly(length), timeout=15)
    finally:
        writer.close()
    return int(head.split()[1]), json.loads(payload)["error"]


async def storm(http: httpx.AsyncClient, url: str, count: int) -> list[httpx.Response]:
    body = {**CHAT, "max_tokens": 40, "ignore_eos": True}
    return await asyncio.gather(*(http.post(url + "/v1/chat/completions", json=body) for _ in range(count)))


def test_hostile_clients_leave_long_streams_exact_and_leak_nothing(tiny, hostile, monkeypatch):
    streams = long_streams(hostile.engine)
    expected = undisturbed_texts(tiny, [ids for _, _, ids in streams])
    url, async_engine = hostile.url, hostile.server.async_engine
    # The tiny model decodes 150 tokens faster than a loaded machine sends the bad inputs: pace its steps
    # (>= 7.5 s for a long stream) until they are all answered, so they surely overlap the long streams.
    pacing = {"on": True}
    step = hostile.engine.step

    def paced_step():
        if pacing["on"]:
            time.sleep(0.05)
        return step()

    monkeypatch.setattr(hostile.engine, "step", paced_step)

    async def scenario():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            longs = [asyncio.ensure_future(read_stream(http, url + path, body)) for path, body, _ in streams]
            deadline = time.monotonic() + 30
            while len(hostile.engine.scheduler.running) < 16:  # every long stream is generating
                assert time.monotonic() < deadline and not any(t.done() for t in longs), "long streams did not start"
                await asyncio.sleep(0.01)
            stop = asyncio.Event()
            dribblers = [asyncio.ensure_future(slow_headers(hostile.port, stop)) for _ in range(3)]
            stalled = [asyncio.ensure_future(slow_body(hostile.port)) for _ in range(3)]
            bad = await asyncio.gather(
                *(post_bad(http, url, path, body) for _, path, body in BAD_INPUTS),
                post_chunked_huge(http, url),
                http.get(url + "/v1/nothing-here"),
                http.get(url + "/v1/chat/completions"),
                *(
                    read_stream(http, url + "/v1/chat/completions", {**CHAT, "max_tokens": 100, "stream": True}, 3)
                    for _ in range(8)
                ),
            )
            finished_during_bad_inputs = sum(t.done() for t in longs)
            pacing["on"] = False
            bad += await asyncio.gather(*stalled)
            async_engine.max_waiting = 4
            try:
                stormed = await storm(http, url, 30)
            finally:
                async_engine.max_waiting = 64
            stop.set()
            await asyncio.gather(*dribblers)
            return await asyncio.gather(*longs), bad, stormed, finished_during_bad_inputs

    results, bad, stormed, finished_early = asyncio.run(asyncio.wait_for(scenario(), timeout=120))

    assert finished_early == 0, "the bad inputs were not sent while every long stream ran"
    for (path, _, _), (text, usage, error), want in zip(streams, results, expected, strict=True):
        assert error is None, (path, error)
        assert text == want and usage["completion_tokens"] == LONG_TOKENS, path
    n_bad = len(BAD_INPUTS)
    codes = {kind: {e["code"] for (k, *_), e in zip(BAD_INPUTS, bad[:n_bad], strict=True) if k == kind}
             for kind in ("ids", "numbers", "types", "huge")}  # fmt: skip
    assert codes["huge"] == {"body_too_large"} and bad[n_bad]["code"] == "body_too_large"
    assert "outside the vocabulary" in next(e["message"] for e in bad[:n_bad] if "384" in e["message"])
    assert_openai_error(bad[n_bad + 1], 404)
    assert_openai_error(bad[n_bad + 2], 405)
    for status, error in bad[-3:]:
        assert status == 408 and error["code"] == "body_timeout" and error["message"]
    refused = [r for r in stormed if r.status_code == 503]
    assert refused and all(r.status_code in (200, 503) for r in stormed)
    for response in refused:
        assert response.headers["retry-after"] == "1"
        assert assert_openai_server_error(response)["code"] == "overloaded"
    hostile.wait_idle(timeout=30)
    good = httpx.post(url + "/v1/completions", json={**COMPLETION, "temperature": 0}, timeout=30)
    assert good.status_code == 200 and good.json()["choices"][0]["finish_reason"] == "length"
    hostile.wait_idle()


def assert_openai_server_error(response: httpx.Response) -> dict:
    assert response.status_code >= 500
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


POISON = [11, 13, 17, 19, 23, 29]


def test_an_engine_failure_for_one_request_ends_only_that_request(tiny, hostile, monkeypatch):
    """The model runner raises for every batch holding the poisoned prompt: that request gets a 500
    (or a final SSE error event), the others stream on to their exact tokens."""
    engine = hostile.engine
    prepare = engine.runner.prepare

    def poisoned(batch):
        if any(s.prompt_token_ids == POISON and len(s.output_token_ids) >= 3 for s, _ in batch):
            raise RuntimeError("injected failure")
        return prepare(batch)

    monkeypatch.setattr(engine.runner, "prepare", poisoned)
    streams = long_streams(engine)[6:12]  # 2 chat, 4 completions
    for _, body, _ in streams:
        body["max_tokens"] = 40
    expected = Engine(tiny, num_blocks=64).generate(
        [ids for _, _, ids in streams], GREEDY.replace(max_tokens=40), progress=False
    )
    url = hostile.url
    poison = {"model": MODEL, "prompt": POISON, "max_tokens": 30, "temperature": 0, "ignore_eos": True}

    async def scenario():
        async with httpx.AsyncClient(timeout=60) as http:
            return await asyncio.gather(
                *(read_stream(http, url + path, body) for path, body, _ in streams),
                read_stream(http, url + "/v1/completions", {**poison, "stream": True}),
                http.post(url + "/v1/completions", json=poison),
            )

    *results, (_, _, stream_error), plain = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    for (text_ok, usage, error), want in zip(results, expected, strict=True):
        assert error is None and text_ok == want.completions[0].text and usage["completion_tokens"] == 40
    assert stream_error["type"] == "server_error" and stream_error["code"] == "engine_error"
    assert "other requests are not affected" in stream_error["message"]
    assert assert_openai_server_error(plain)["code"] == "engine_error" and plain.status_code == 500
    hostile.wait_idle()
