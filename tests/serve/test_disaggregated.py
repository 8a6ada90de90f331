"""Disaggregated serving with real processes on loopback: a prefill worker, a decode worker and the
router give the same greedy output as one engine; a decode worker killed mid-request gives the
client an error (not a hang) and the prefill worker frees its blocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from llmkit.core import SamplingParams
from llmkit.serve.engine import Engine

QUESTIONS = ["The quick brown fox", "1 + 1 =", "def reverse(s):"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmkit.core.cli", "serve", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_healthy(url: str, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a worker exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not become healthy")


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

    def run(model_dir):
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
        ]
        workers = {
            "prefill": start(*common, "--role", "prefill", "--port", str(ports["prefill"])),
            "decode": start(*common, "--role", "decode", "--port", str(ports["decode"])),
        }
        router = start(
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
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


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
