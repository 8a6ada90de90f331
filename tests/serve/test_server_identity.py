"""Who the server says it is: several served names, /v1/models with context lengths, and `x-request-id` on
every response (echoed or generated), errors and streams included."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.routing import Route

from llmkit.core.cli import build_parser
from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app

NAMES = ["tiny", "tiny-alias"]


async def broken(request: Request):
    raise RuntimeError("a bug in a handler")


@pytest.fixture(scope="module")
def url(tiny):
    server = Server(Engine(tiny, num_blocks=64), NAMES)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(server, extra_routes=[Route("/internal/broken", broken, methods=["GET"])])
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    runner.should_exit = True
    thread.join(timeout=10)


def completion(url: str, model: str = "tiny", **options) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2}, **options)


def test_every_served_name_is_accepted_and_echoed(url):
    for name in NAMES:
        response = completion(url, name)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == name


def test_an_unknown_name_is_404_naming_the_served_ones(url):
    response = completion(url, "gpt-4o")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'tiny', 'tiny-alias'" in error["message"]


def test_models_lists_every_name_with_its_context_length(url, tiny):
    models = httpx.get(f"{url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == NAMES
    assert {m["max_model_len"] for m in models} == {Engine(tiny, num_blocks=8).context_length}


def test_the_clients_request_id_is_echoed(url):
    for response in (
        completion(url, headers={"x-request-id": "trace-123"}),
        completion(url, "gpt-4o", headers={"x-request-id": "trace-404"}),
        httpx.get(f"{url}/v1/models", headers={"x-request-id": "trace-models"}),
    ):
        assert response.headers["x-request-id"] == response.request.headers["x-request-id"]


def test_a_request_id_is_generated_when_none_is_sent(url):
    ids = [completion(url).headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]


@pytest.mark.parametrize(
    "request_",
    [
        lambda url: httpx.post(f"{url}/v1/completions", content=b"{not json"),  # 400 from the route
        lambda url: httpx.get(f"{url}/v1/nowhere"),  # 404 from the router
        lambda url: httpx.get(f"{url}/v1/completions"),  # 405
        lambda url: httpx.get(f"{url}/internal/broken"),  # 500 from the error handler outside the middleware
    ],
    ids=["bad-json", "no-route", "wrong-method", "handler-bug"],
)
def test_errors_carry_the_request_id(url, request_):
    response = request_(url)
    assert response.status_code >= 400
    assert "error" in response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_the_500_echoes_the_clients_id(url):
    response = httpx.get(f"{url}/internal/broken", headers={"x-request-id": "trace-500"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "trace-500"


def test_streams_carry_the_request_id(url):
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, headers={"x-request-id": "trace-sse"}) as response:
        assert response.headers["x-request-id"] == "trace-sse"
        assert "[DONE]" in response.read().decode()


@pytest.mark.parametrize("unsafe", ["has space", "x" * 201, "é"])
def test_an_unsafe_request_id_is_replaced(url, unsafe):
    response = completion(url, headers={"x-request-id": unsafe.encode("utf-8")})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_served_names_must_be_distinct_and_not_the_embedding_models(tiny):
    from llmkit.serve.server.embeddings import EmbeddingModel

    engine = Engine(tiny, num_blocks=8)
    with pytest.raises(ValueError, match="distinct"):
        Server(engine, ["a", "a"])
    with pytest.raises(ValueError, match="distinct"):
        Server(engine, [])
    with pytest.raises(ValueError, match="embedding model"):
        Server(engine, ["all-minilm-l6-v2"], embeddings=EmbeddingModel())


def test_the_cli_takes_several_served_names():
    parser, _ = build_parser()
    args = parser.parse_args(["serve", "--served-model-name", "a", "b", "--embedding-model", "none"])
    assert args.served_model_name == ["a", "b"] and args.embedding_model == "none"
    assert parser.parse_args(["serve"]).embedding_model == "all-minilm-l6-v2"
