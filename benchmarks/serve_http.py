"""Servers under test for benchmarks/serve.py, measured alike: each runs as its own process on loopback
and one streaming client sends the same OpenAI `/v1/completions` requests (token-id prompts, greedy,
fixed output length) to each; both report their peak RSS (VmHWM) and the usage they counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SERVED_NAME = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_llama_server(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("LLAMA_SERVER"), shutil.which("llama-server")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def llmkit_command(
    model: Path, port: int, slots: int, kv_bytes: int, weights: str | None, threads: int
) -> tuple[list[str], dict]:
    cli = Path(sys.executable).with_name("llmkit")
    if not cli.is_file():
        raise SystemExit(f"the llmkit CLI is not beside {sys.executable}; install llmkit-serve into this venv")
    command = [str(cli), "serve", "--model", str(model), "--port", str(port), "--served-model-name", SERVED_NAME]
    command += ["--max-num-seqs", str(slots), "--kv-cache-memory", str(kv_bytes), "--no-prefix-caching"]
    if weights is not None:
        helped = subprocess.run([str(cli), "serve", "--help"], capture_output=True, text=True).stdout
        if "--weights" not in helped:
            raise SystemExit("--llmkit-weights: this build's `llmkit serve` has no --weights option")
        command += ["--weights", weights]
    return command, {"OMP_NUM_THREADS": str(threads)}


def llama_server_command(binary: str, model: Path, port: int, slots: int, capacity: int, threads: int):
    command = [binary, "-m", str(model), "--port", str(port), "-np", str(slots), "-c", str(capacity)]
    command += ["-t", str(threads), "-tb", str(threads), "--cont-batching", "--kv-unified", "--no-cache-prompt"]
    return [*command, "--no-webui"], {}


@contextlib.contextmanager
def server_process(command: list[str], env: dict, startup_seconds: float = 300) -> Iterator[tuple[str, int]]:
    """Start a server, wait for GET /health to answer 200, yield (base URL, pid); stop it in `finally`."""
    import httpx

    port = command[command.index("--port") + 1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | env)
        try:
            deadline = time.monotonic() + startup_seconds
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().strip().splitlines()[-15:]
                    raise RuntimeError(f"{Path(command[0]).name} did not start: " + " | ".join(tail))
                time.sleep(0.5)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


async def _one(http, url: str, recorder, i: int, prompt: list[int], out: int, extra: dict) -> int:
    """One streamed request; the completion tokens the server says it made."""
    body = {
        "model": SERVED_NAME,
        "prompt": prompt,
        "max_tokens": out,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    } | extra
    made = None
    async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                made = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                if choice.get("text") or choice.get("finish_reason"):
                    recorder.token(i, choice.get("finish_reason") is not None)
    return made


def stream_all(url: str, jobs, recorder, extra: dict | None = None) -> None:
    """Send every job at once; the recorder's clock starts here. Fails if a server made other lengths."""
    import httpx

    async def everyone():
        limits = httpx.Limits(max_connections=len(jobs), max_keepalive_connections=len(jobs))
        async with httpx.AsyncClient(timeout=3600, limits=limits) as http:
            return await asyncio.gather(
                *(_one(http, url, recorder, i, p, o, extra or {}) for i, (p, o) in enumerate(jobs))
            )

    recorder.start = time.perf_counter()
    made = asyncio.run(everyone())
    wrong = [(i, m, o) for i, (m, (_, o)) in enumerate(zip(made, jobs, strict=True)) if m is not None and m != o]
    if wrong:
        raise RuntimeError(f"{url}: completion lengths differ from the asked ones (request, made, asked): {wrong[:3]}")


def warm_up(url: str, prompt: list[int], extra: dict | None = None) -> None:
    """One short request before the clock starts (first-call allocations, kernel selection)."""
    import httpx

    body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0, "ignore_eos": True}
    response = httpx.post(f"{url}/v1/completions", json=body | (extra or {}), timeout=600)
    response.raise_for_status()
