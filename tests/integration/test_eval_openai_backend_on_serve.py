"""llmkit-eval's `openai` backend scoring log-likelihoods through `llmkit serve` (echo + logprobs on
/v1/completions, as docs/eval.md says) gives what the reference backend computes in process."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from llmkit.core.backends import open_backend
from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app

REQUESTS = [
    ("Q: What is the capital of France?\nA:", " Paris"),
    ("Q: What is the capital of France?\nA:", " London is big"),
    ("The quick brown fox", " jumps over the lazy dog."),
    ("1 + 1 =", " 2"),
    ("Héllo wörld!", " 日本語 🙂"),  # multi-byte characters split over byte tokens
]


@pytest.fixture(scope="module")
def served(tiny):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Server(Engine(tiny, num_blocks=256), "tiny"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_openai_backend_loglikelihoods_through_the_server_equal_the_reference(served, tiny, tiny_backend):
    remote = open_backend("openai", model="tiny", base_url=served, max_concurrency=2)
    theirs = remote.loglikelihood(REQUESTS)
    mine = tiny_backend.loglikelihood(REQUESTS)
    for (context, continuation), got, want in zip(REQUESTS, theirs, mine, strict=True):
        assert got.num_tokens == want.num_tokens, (context, continuation)
        assert got.logprob == pytest.approx(want.logprob, abs=1e-4), (context, continuation)
        assert got.is_greedy == want.is_greedy, (context, continuation)
