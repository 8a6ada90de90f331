"""Disaggregated serving with real processes on loopback: a prefill worker, a decode worker and the
router give the same greedy output as one engine; a decode worker killed mid-request gives the
client an error (not a hang) and the prefill worker frees its blocks; workers answer only requests
that carry the internal secret, and the decode worker keeps to --max-waiting. In process: held
prefills are freed when their step fails, when they are cancelled, and when they expire unsent."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from live_servers import free_port, start_cli, stop, wait_healthy

from llmkit.core import SamplingParams
from llmkit.serve.disaggregated.held import HeldPrefills
from llmkit.serve.engine import Engine
from llmkit.serve.server.errors import APIError
from llmkit.serve.server.state import Server

QUESTIONS = ["The quick brown fox", "1 + 1 =", "def reverse(s):"]
SECRET = "a-test-secret-" + os.urandom(8).hex()
SECRET_HEADER = {"x-llmkit-internal-secret": SECRET}


def start(*args: str, secret: str | None = SECRET) -> subprocess.Popen:
    return start_cli("serve", *args, secret=secret)


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory):
    """Big enough that 1,500 tokens take seconds, so a worker can be killed mid-request."""
    from llmkit.core.testing import write_tiny_model

    return write_tiny_model(
        tmp_path_factory.mktemp("slow"),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=32,
        max_position_embeddings=2048,
    )


@pytest.fixture
def launch():
    """Start a prefill worker, a decode worker and the router over a model; stop them afterwards."""
    processes: list[subprocess.Popen] = []

    def run(model_dir, common_options=(), decode_options=()):
        ports = {name: free_port() for name in ("prefill", "decode", "router", "store")}
        common = [
            "--model",
            str(model_dir),
            "--kv-cache-memory",
            "32MiB",
            "--kv-transfer-address",
            f"127.0.0.1:{ports['store']}",
            "--kv-transfer-timeout",
            "20",
            *common_options,
        ]
        workers = {
            "prefill": start(*common, "--role", "prefill", "--port", str(ports["prefill"])),
            "decode": start(*common, *decode_options, "--role", "decode", "--port", str(ports["decode"])),
        }
        router = start(
            *common_options,
            "--role",
            "router",
            "--port",
            str(ports["router"]),
            "--prefill-url",
            f"http://127.0.0.1:{ports['prefill']}",
            "--decode-url",
            f"http://127.0.0.1:{ports['decode']}",
        )
        processes.extend([*workers.values(), router])
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name in ("prefill", "decode", "router"):
            wait_healthy(urls[name], processes)
        return urls, workers

    yield run
    stop(processes)


def test_output_equals_a_single_engine(launch, tiny, tiny_model_dir):
    urls, _ = launch(tiny_model_dir)
    model = tiny_model_dir.name
    engine = Engine(tiny, num_blocks=64)
    for question in QUESTIONS:
        expected = engine.generate(
            [question], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True), progress=False
        )
        body = {"model": model, "prompt": question, "max_tokens": 12, "temperature": 0, "ignore_eos": True}
        reply = httpx.post(f"{urls['router']}/v1/completions", json=body, timeout=60).json()
        assert reply["choices"][0]["text"] == expected[0].completions[0].text
    chat = {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 10,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    streamed = ""
    with httpx.stream("POST", f"{urls['router']}/v1/chat/completions", json=chat, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                import json

                chunk = json.loads(line[6:])
                streamed += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
    prompt = tiny.chat_prompt([{"role": "user", "content": "hello"}])
    expected = engine.generate([prompt], SamplingParams(temperature=0, max_tokens=10, ignore_eos=True), progress=False)
    assert streamed == expected[0].completions[0].text
    errors = httpx.post(f"{urls['router']}/v1/completions", json={"model": "nope", "prompt": "x"}, timeout=30)
    assert errors.status_code == 404 and errors.json()["error"]["code"] == "model_not_found"


def test_killing_the_decode_worker_mid_request_is_an_error_and_frees_prefill_blocks(launch, slow_model_dir):
    urls, workers = launch(slow_model_dir)
    body = {
        "model": slow_model_dir.name,
        "prompt": "The quick brown fox",
        "max_tokens": 1500,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    lines = []
    started = time.monotonic()
    with httpx.stream("POST", f"{urls['router']}/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 6:
                os.killpg(workers["decode"].pid, signal.SIGKILL)
    assert time.monotonic() - started < 60
    assert any('"code":"worker_failed"' in line or '"code": "worker_failed"' in line for line in lines), lines[-3:]
    metrics = httpx.get(f"{urls['prefill']}/metrics", timeout=10).text
    usage = next(line for line in metrics.splitlines() if line.startswith("llmkit_kv_cache_usage_ratio"))
    assert float(usage.split()[-1]) == 0.0


def test_workers_answer_only_the_router_and_keep_to_max_waiting(launch, tiny_model_dir):
    api_key = "client-key-" + os.urandom(4).hex()
    urls, _ = launch(
        tiny_model_dir,
        common_options=("--api-key", api_key),
        decode_options=("--max-waiting", "1", "--max-num-seqs", "1"),
    )
    client_auth = {"authorization": f"Bearer {api_key}"}
    body = {"model": tiny_model_dir.name, "prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0}

    # The router forwards the client's key to workers that check one, with the secret.
    reply = httpx.post(f"{urls['router']}/v1/completions", json=body, headers=client_auth, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["text"]
    assert httpx.post(f"{urls['router']}/v1/completions", json=body, timeout=60).status_code == 401

    # A forged transfer header is refused at once (a worker used to wait --kv-transfer-timeout for it).
    for secret in (None, "wrong-secret-of-enough-length"):
        headers = {**client_auth, "x-llmkit-transfer": "12345:1"}
        if secret is not None:
            headers["x-llmkit-internal-secret"] = secret
        started = time.monotonic()
        refused = httpx.post(f"{urls['decode']}/v1/completions", json=body, headers=headers, timeout=10)
        assert time.monotonic() - started < 5
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_internal_secret"
    for url, path in (("prefill", "/internal/prefill"), ("prefill", "/internal/send"), ("decode", "/v1/completions")):
        refused = httpx.post(f"{urls[url]}{path}", json={"endpoint": "completions", "request": body}, timeout=10)
        assert refused.status_code == 401, (url, path)
    assert httpx.get(f"{urls['decode']}/v1/models", headers=client_auth, timeout=10).status_code == 401
    assert httpx.get(f"{urls['decode']}/health", timeout=10).status_code == 200

    # The decode worker keeps to --max-waiting (1 running, 1 waiting; the rest get OpenAI's 503).
    long = {**body, "max_tokens": 200, "ignore_eos": True}
    headers = {**client_auth, **SECRET_HEADER}

    def post(_):
        return httpx.post(f"{urls['decode']}/v1/completions", json=long, headers=headers, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(post, range(6)))
    refused = [r for r in replies if r.status_code == 503]
    assert refused and any(r.status_code == 200 for r in replies), [r.status_code for r in replies]
    assert all(r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "1" for r in refused)
    for name in ("prefill", "decode"):
        metrics = httpx.get(f"{urls[name]}/metrics", timeout=10).text
        usage = next(line for line in metrics.splitlines() if line.startswith("llmkit_kv_cache_usage_ratio"))
        assert float(usage.split()[-1]) == 0.0, name


def test_a_role_without_a_usable_secret_refuses_to_start(tiny_model_dir):
    """Even on loopback: any local process (or a web page, through the browser) can reach 127.0.0.1."""
    cases = {
        ("prefill", None): "LLMKIT_INTERNAL_SECRET",
        ("decode", "short"): "at least 16",
        ("router", None): "LLMKIT_",
    }
    processes = {
        (role, secret): start("--role", role, "--model", str(tiny_model_dir), "--port", str(free_port()), secret=secret)
        for role, secret in cases
    }
    try:
        for case, process in processes.items():
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 2 and cases[case] in stderr, (case, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


TRANSPORT_PEER = """
import sys
from llmkit.serve.disaggregated.kv_transfer import KVTransport
role, address, secret = sys.argv[1:]
transport = KVTransport(role, address, [1, 2, 3], timeout=30, secret=secret)
try:
    transport.connected.result(timeout=60)
    print("connected")
except Exception as err:
    print("refused:", err)
"""


def test_the_kv_transport_refuses_a_peer_without_the_secret():
    """torch.distributed authenticates nobody: each rank proves the secret before any KV moves."""
    runs = {}
    for name, decode_secret in (("same", SECRET), ("impostor", "another-secret-" + os.urandom(8).hex())):
        address = f"127.0.0.1:{free_port()}"
        runs[name] = [
            subprocess.Popen(
                [sys.executable, "-c", TRANSPORT_PEER, role, address, secret],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for role, secret in (("prefill", SECRET), ("decode", decode_secret))
        ]
    try:
        outputs = {name: [p.communicate(timeout=120)[0].strip() for p in pair] for name, pair in runs.items()}
    finally:
        for process in (p for pair in runs.values() for p in pair):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
    assert outputs["same"] == ["connected", "connected"], outputs
    assert all(o.startswith("refused:") and "did not prove the internal secret" in o for o in outputs["impostor"]), (
        outputs
    )


@pytest.fixture
def server_over(make_engine):
    """A `Server` (engine on its own thread) over a fresh tiny engine; shut down afterwards."""
    servers: list[Server] = []

    def make(**config) -> Server:
        servers.append(Server(make_engine(**config), "tiny"))
        return servers[-1]

    yield make
    for server in servers:
        server.async_engine.shutdown()


def used_blocks(engine: Engine) -> int:
    return engine.block_manager.num_blocks - engine.block_manager.num_free_blocks


def wait_until_all_blocks_free(engine: Engine, timeout: float = 10.0) -> float:
    """Seconds until the engine holds no request and no block; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not engine.requests and used_blocks(engine) == 0:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"leaked: {used_blocks(engine)} blocks, {len(engine.requests)} requests")


PROMPT = list(range(1, 41))  # three blocks of 16
PARAMS = SamplingParams(temperature=0, max_tokens=8)


def test_an_unsent_prefill_is_freed_when_it_expires_without_further_traffic(server_over):
    server = server_over()
    held = HeldPrefills(server, hold_seconds=0.5)
    try:
        _, seq = asyncio.run(held.prefill(PROMPT, PARAMS))
        assert len(held) == 1 and used_blocks(server.engine) == len(seq.block_table) == 3
        time.sleep(0.2)
        assert len(held) == 1 and used_blocks(server.engine) == 3  # not before it expires
        assert wait_until_all_blocks_free(server.engine, timeout=5.0) < 5.0  # no request arrived meanwhile
        assert len(held) == 0
    finally:
        held.close()


def test_a_failing_step_frees_the_blocks_kept_for_the_kv_transfer(server_over, monkeypatch):
    server = server_over()
    calls = []

    def failing_execute(inputs):
        calls.append(inputs)
        raise RuntimeError("injected fault in the forward")

    monkeypatch.setattr(server.engine.runner, "execute", failing_execute)
    held = HeldPrefills(server, hold_seconds=600)

    async def two_prefills() -> list:
        """Both in one batch (the engine then retries each alone): the engine thread waits until both are queued."""
        both_queued = threading.Event()
        server.async_engine.call(lambda: both_queued.wait(10))
        tasks = [asyncio.ensure_future(held.prefill(p, PARAMS)) for p in (PROMPT, PROMPT[::-1])]
        await asyncio.sleep(0.3)
        both_queued.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(two_prefills())
        assert all(isinstance(r, APIError | RuntimeError) for r in results), results
        assert calls and len(held) == 0
        wait_until_all_blocks_free(server.engine)
    finally:
        held.close()


def test_a_prefill_cancelled_mid_step_frees_the_blocks_kept_for_the_kv_transfer(server_over, monkeypatch):
    server = server_over(max_num_batched_tokens=16)  # a chunked prefill: blocks are held across steps
    in_step, go_on = threading.Event(), threading.Event()
    execute = server.engine.runner.execute

    def gated_execute(inputs):
        in_step.set()
        go_on.wait(10)
        return execute(inputs)

    monkeypatch.setattr(server.engine.runner, "execute", gated_execute)
    held = HeldPrefills(server, hold_seconds=600)

    async def cancel_mid_prefill() -> None:
        task = asyncio.ensure_future(held.prefill(PROMPT, PARAMS))
        assert await asyncio.to_thread(in_step.wait, 10)
        assert used_blocks(server.engine) > 0
        task.cancel()
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(cancel_mid_prefill())
        assert len(held) == 0
        wait_until_all_blocks_free(server.engine)
    finally:
        go_on.set()
        held.close()
