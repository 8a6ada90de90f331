"""`llmkit serve` in a subprocess on a free loopback port, for the real-client tests (lm-eval, the Agents SDK,
garak): its output goes to a log file, whose tail is the error when it exits or does not start."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llmkit_serve(*args: str, log: Path, env: dict[str, str], timeout: float = 180) -> Iterator[tuple[str, str]]:
    """`llmkit serve ARGS... --port P`, healthy; yields (base url, served model name) and stops it after."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [BIN / "llmkit", "serve", *args, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"llmkit serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"llmkit serve did not start: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
