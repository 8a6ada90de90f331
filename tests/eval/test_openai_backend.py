"""The OpenAI-compatible HTTP backend against a scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmkit.core import SamplingParams
from llmkit.core.backends import open_backend
from llmkit.core.plugins import registry
from llmkit.eval.errors import EvalError


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body, self.headers.get("Authorization")))
        if body.get("model") == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        if self.path == "/v1/completions" and body.get("echo"):
            prompt = body["prompt"]  # one token per character: " 2" after "1 + 1 ="
            answer = {
                "choices": [
                    {
                        "index": 0,
                        "text": prompt + "!",
                        "logprobs": {
                            "tokens": [*list(prompt), "!"],
                            "token_logprobs": [None] + [-0.5] * (len(prompt) - 1) + [-1.0],
                            "text_offset": [*range(len(prompt)), len(prompt)],
                            "top_logprobs": [None] + [{c: -0.5} for c in prompt[1:]] + [{"!": -1.0}],
                        },
                    }
                ]
            }
        elif self.path == "/v1/completions":
            answer = {
                "choices": [
                    {"index": i, "text": f"{body['prompt']}-{i}", "finish_reason": "stop"} for i in range(body["n"])
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4 * body["n"]},
            }
        else:
            call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
            message = {"role": "assistant", "content": "hello " + body["messages"][-1]["content"]}
            if body.get("tools"):
                message["tool_calls"] = [call]
            answer = {
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 2},
            }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def _backend(server, model="m"):
    return open_backend("openai", model=model, base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k")


def test_registered_by_llmkit_eval():
    assert registry("backends").owner("openai").startswith("llmkit-eval")


def test_completions_and_token_counts(server):
    outputs = _backend(server).generate(
        ["hi", "yo"], SamplingParams(temperature=0.5, max_tokens=3, n=2, stop=["\n"], seed=4)
    )
    assert [c.text for c in outputs[1].completions] == ["yo-0", "yo-1"]
    assert outputs[0].prompt_tokens == 5 and outputs[0].completions[0].completion_tokens == 4
    path, body, auth = server.requests[-1]
    assert path == "/v1/completions" and body["stop"] == ["\n"] and body["seed"] == 4 and auth == "Bearer k"


def test_chat_with_tool_calls(server):
    (result,) = _backend(server).chat(
        [[{"role": "user", "content": "there"}]], SamplingParams(max_tokens=4), tools=[{"type": "function"}]
    )
    assert result.message.content == "hello there" and result.prompt_tokens == 7
    assert result.message.tool_calls[0].name == "add" and result.message.tool_calls[0].arguments == {"a": 1, "b": 2}


def test_loglikelihood_from_echoed_logprobs(server):
    (result,) = _backend(server).loglikelihood([("1 + 1 =", " 2")])
    assert result.num_tokens == 2 and result.logprob == pytest.approx(-1.0) and result.is_greedy


def test_http_errors_are_one_line(server):
    with pytest.raises(EvalError, match="answered HTTP 500: boom"):
        _backend(server, "broken").generate(["x"], SamplingParams(max_tokens=1))
    with pytest.raises(EvalError, match="cannot reach"):
        open_backend("openai", model="m", base_url="http://127.0.0.1:9/v1", timeout=2).generate(
            ["x"], SamplingParams(max_tokens=1)
        )
