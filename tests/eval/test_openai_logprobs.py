"""Eval's `openai` backend asks for logprobs only when the sampling params do, and fills the fields the local
backends fill (per-token logprobs and top logprobs, with each token's text since HTTP returns no ids), so the
logprob-margin escalation rule works over HTTP: against a scripted server, and against a real `llmkit serve`."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmkit.core import SamplingParams
from llmkit.core.backends import ModelBackend, open_backend
from llmkit.core.scaling import BackendSampler, Tier, cascade
from llmkit.eval.errors import EvalError

# (token, logprob, top-2) per generated token; the answer token " 42" is confident for "easy", hesitant for "hard"
TOKENS = {
    "easy": [("The", -0.1, (-0.1, -3.0)), (" answer", -0.2, (-0.2, -4.0)), (" is", -0.1, (-0.1, -5.0)),
             (" 42", -0.05, (-0.05, -6.0))],
    "hard": [("The", -0.1, (-0.1, -3.0)), (" answer", -0.2, (-0.2, -4.0)), (" is", -0.1, (-0.1, -5.0)),
             (" 42", -0.6, (-0.6, -0.8))],
}  # fmt: skip
ALTERNATIVE = "<alt>"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        tokens = TOKENS["hard" if "hard" in prompt else "easy"]
        text = "".join(t for t, _, _ in tokens)
        choices = []
        for i in range(body.get("n", 1)):
            if chat:
                logprobs = {
                    "content": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": [
                            {"token": t, "logprob": top[0], "bytes": []}, {"token": ALTERNATIVE, "logprob": top[1]}
                        ]}
                        for t, lp, top in tokens
                    ]
                } if body.get("logprobs") and not self.server.omit_logprobs else None  # fmt: skip
                choices.append({"index": i, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                                "finish_reason": "stop"})  # fmt: skip
            else:
                logprobs = {
                    "tokens": [t for t, _, _ in tokens],
                    "token_logprobs": [lp for _, lp, _ in tokens],
                    "top_logprobs": [{t: top[0], ALTERNATIVE: top[1]} for t, _, top in tokens],
                    "text_offset": [0, 3, 10, 13],
                } if "logprobs" in body and not self.server.omit_logprobs else None  # fmt: skip
                choices.append({"index": i, "text": text, "logprobs": logprobs, "finish_reason": "stop"})
        data = json.dumps({"choices": choices, "usage": {"prompt_tokens": 9, "completion_tokens": 4 * len(choices)}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.bodies, httpd.omit_logprobs = [], False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _backend(port: int):
    return open_backend("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1")


def test_logprobs_are_requested_only_when_the_params_ask(server):
    backend = _backend(server.server_port)
    plain = SamplingParams(temperature=0, max_tokens=4)
    chat = backend.chat([[{"role": "user", "content": "easy"}]], plain)[0].choices[0]
    completion = backend.generate(["easy"], plain)[0].completions[0]
    assert all("logprobs" not in b and "top_logprobs" not in b for b in server.bodies)
    assert chat.top_logprobs is None and chat.token_texts is None
    assert completion.top_logprobs is None and completion.logprobs is None and completion.token_texts is None

    asked = plain.replace(top_logprobs=2)
    chat = backend.chat([[{"role": "user", "content": "hard"}]], asked)[0].choices[0]
    completion = backend.generate(["hard"], asked)[0].completions[0]
    assert server.bodies[2]["logprobs"] is True and server.bodies[2]["top_logprobs"] == 2  # chat's fields
    assert server.bodies[3]["logprobs"] == 2 and "top_logprobs" not in server.bodies[3]  # legacy completions'
    for choice in (chat, completion):
        assert choice.token_texts == ["The", " answer", " is", " 42"]
        assert choice.logprobs == [-0.1, -0.2, -0.1, -0.6]
        assert choice.top_logprobs[3] == {" 42": -0.6, ALTERNATIVE: -0.8}


def test_a_server_that_ignores_the_request_for_logprobs_is_an_error(server):
    server.omit_logprobs = True
    backend = _backend(server.server_port)
    asked = SamplingParams(temperature=0, max_tokens=4, top_logprobs=2)
    with pytest.raises(EvalError, match="no logprobs"):
        backend.chat([[{"role": "user", "content": "easy"}]], asked)
    with pytest.raises(EvalError, match="no logprobs"):
        backend.generate(["easy"], asked)


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_the_margin_rule_escalates_from_an_http_tier(server, tiny, chat):
    cheap = BackendSampler(_backend(server.server_port), SamplingParams(temperature=0, max_tokens=4, top_logprobs=2))
    strong = BackendSampler(ModelBackend(tiny), SamplingParams(temperature=0, max_tokens=2, ignore_eos=True))
    tiers = [Tier("http", cheap), Tier("local", strong)]
    results = {}
    for name in ("easy one", "hard one"):
        prompt = [{"role": "user", "content": name}] if chat else name
        results[name] = cascade(tiers, prompt, "logprob_margin_below:threshold=1.0", answer="number")
    easy, hard = results["easy one"], results["hard one"]
    assert easy.tier == "http" and easy.answer == "42"
    assert "margin 5.950" in easy.decisions[0].reason and "over 1 answer tokens" in easy.decisions[0].reason
    assert hard.tier == "local" and "margin 0.200" in hard.decisions[0].reason  # only " 42" counted, not "The"


def test_against_a_real_llmkit_serve(tiny):
    """The served top logprobs over HTTP equal the local backend's for the same greedy reply."""
    pytest.importorskip("llmkit.serve", reason="the real-server check needs llmkit-serve (not in eval's nox session)")
    import uvicorn

    from llmkit.serve.engine import Engine
    from llmkit.serve.server.app import Server, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Server(Engine(tiny, num_blocks=64, max_num_seqs=4), "tiny"))
    httpd = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not httpd.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        remote = open_backend("openai", model="tiny", base_url=f"http://127.0.0.1:{port}/v1")
        params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True, top_logprobs=2)
        conversation = [{"role": "user", "content": "Say a number"}]
        served = remote.chat([conversation], params)[0].choices[0]
        local = ModelBackend(tiny).chat([conversation], params)[0].choices[0]
        served_completion = remote.generate(["12 + 30 ="], params)[0].completions[0]
        local_completion = ModelBackend(tiny).generate(["12 + 30 ="], params)[0].completions[0]
    finally:
        httpd.should_exit = True
        thread.join(timeout=10)
    for over_http, here in ((served, local), (served_completion, local_completion)):
        # (a random tiny model's tokens are often bytes of no whole character: compare counts, not texts)
        assert over_http.text == here.text and len(over_http.token_texts) == len(here.token_ids) == 4
        assert len(over_http.top_logprobs) == len(here.top_logprobs) == 4
        for got, want in zip(over_http.top_logprobs, here.top_logprobs, strict=True):
            assert sorted(got.values(), reverse=True) == pytest.approx(sorted(want.values(), reverse=True), abs=1e-3)
