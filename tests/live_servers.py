"""Test helper: real `llmkit serve` processes on loopback, started and stopped by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cli(*args: str, secret: str | None = None) -> subprocess.Popen:
    """`llmkit ARGS...` in its own process group, with LLMKIT_INTERNAL_SECRET set to `secret` (or unset)."""
    env = {k: v for k, v in os.environ.items() if k != "LLMKIT_INTERNAL_SECRET"}
    if secret is not None:
        env["LLMKIT_INTERNAL_SECRET"] = secret
    return subprocess.Popen(
        [sys.executable, "-m", "llmkit.core.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )


def wait_healthy(url: str, processes: list[subprocess.Popen], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not become healthy")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class InProcessServer:
    """An ASGI app served by uvicorn on a thread of this process (for apps cheap to build in a test);
    `start()`/`stop()`, or a `with` block."""

    def __init__(self, app, served=None):
        self.served = served  # what the app serves (e.g. llmkit's Server), for tests that look inside
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.uvicorn = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)

    def start(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the in-process server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)

    def post(self, path: str, body: dict, **options) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=120, **options)

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
