"""A cascade whose cheap tier is a local model and whose expensive tier is an OpenAI-compatible URL (eval's
`openai` backend against a scripted server on 127.0.0.1): only escalated prompts reach the server, and their
cost is the server's token counts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmkit.core import SamplingParams
from llmkit.core.backends import ModelBackend, open_backend
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.scaling import BackendSampler, Tier, cascade
from llmkit.core.verifiers import VerifierResult


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.asked.append(body["messages"][-1]["content"])
        n = body.get("n", 1)
        answer = {
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": "The answer is 42"}, "finish_reason": "stop"}
                for i in range(n)
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5 * n},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.asked = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class _Verifiers:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("test_http_easy", lambda p, c, r: VerifierResult.from_bool(p.startswith("easy"), "hard prompt"))


def test_a_local_tier_then_an_openai_compatible_url(tmp_path, server, tiny):
    register_plugin(_Verifiers(), "test-http-cascade-verifiers")
    try:
        local = ModelBackend(tiny)
        remote = open_backend("openai", model="big", base_url=f"http://127.0.0.1:{server.server_port}/v1")
        tiers = [
            Tier("local", BackendSampler(local, SamplingParams(temperature=0, max_tokens=3, ignore_eos=True))),
            Tier("remote", BackendSampler(remote, SamplingParams(temperature=0.7, max_tokens=8)), n=4),
        ]
        prompts = ["easy one", "hard one", "easy two", "hard two"]
        results = [
            cascade(tiers, [{"role": "user", "content": p}], "verifier_fails:verifier=test_http_easy") for p in prompts
        ]
    finally:
        unregister_plugin("test-http-cascade-verifiers")
    assert [r.tier for r in results] == ["local", "remote", "local", "remote"]
    assert server.asked == ["hard one", "hard two"]  # the URL saw only the escalated prompts
    hard = results[1]
    assert hard.answer == "42" and hard.results[1].votes == {"42": 4.0}
    assert hard.results[1].cost.generated_tokens == 20 and hard.results[1].cost.prompt_tokens == 11  # the server's
    assert hard.generated_tokens == 3 + 20 and results[0].generated_tokens == 3
