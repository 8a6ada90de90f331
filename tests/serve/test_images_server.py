"""Images through the OpenAI-compatible server on loopback: a base64 image through the `openai` SDK (its
usage counts image tokens), prefix-cache hits on a repeated image and misses on a different one, remote
URLs only from allowed hosts, and every bad image a 4xx while another stream finishes unchanged."""

from __future__ import annotations

import argparse
import base64
import io
import struct
import threading
import zlib

import httpx
import numpy as np
import openai
import pytest
from image_model import build_tiny_vlm
from live_servers import InProcessServer
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from llmkit.core.cli import CommandRegistrar
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app
from llmkit.serve.server.cli import register as register_serve_commands
from llmkit.serve.server.image_options import ImageLimits, image_limits_from

NUM_BLOCKS = 256
MODEL = "tiny-vlm"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return load_vision_language(build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-server")))


@pytest.fixture(scope="module")
def live(vlm):
    server = Server(Engine(vlm, num_blocks=NUM_BLOCKS, block_size=4), MODEL)
    server.image_limits = ImageLimits(max_images=2, max_pixels=1_000_000, url_allow=("127.0.0.1",))
    with InProcessServer(create_app(server), served=server) as running:
        yield running


def _png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels in a few dozen bytes (its pixel data is never there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _chat(*urls: str, detail: str = "auto", text: str = "what shape is this?", max_tokens: int = 12, **extra) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": url, "detail": detail}} for url in urls]
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        **extra,
    }


def _template_messages() -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what shape is this?"}]}]


def _reference_text(vlm, png: bytes, detail: str, max_tokens: int) -> tuple[str, int]:
    prompt = vlm.text_prompt(vlm.chat_template.render(_template_messages(), image_parts=True), [png], detail=detail)
    ids = vlm.generate_greedy(prompt, max_tokens, stop_token_ids=())
    return vlm.tokenizer.decode(ids), len(prompt.token_ids)


def test_a_base64_image_through_the_openai_sdk(live, vlm):
    png = _png(50, 20, seed=1)
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused")
    body = _chat(_data_url(png), detail="high")

    reply = client.chat.completions.create(
        model=MODEL, messages=body["messages"], temperature=0, max_tokens=12, extra_body={"ignore_eos": True}
    )

    expected, prompt_tokens = _reference_text(vlm, png, "high", 12)
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == prompt_tokens  # image tokens included (9 tiles x 4, and their tags)
    assert prompt_tokens > 9 * 4
    (model,) = [m for m in client.models.list().data if m.id == MODEL]
    assert model.input_modalities == ["text", "image"]


def test_a_repeated_image_hits_the_prefix_cache_and_a_different_one_misses(live, vlm):
    first, other = _png(30, 30, seed=2), _png(30, 30, seed=3)
    cold = live.post("/v1/chat/completions", _chat(_data_url(first), detail="low")).json()
    repeated = live.post("/v1/chat/completions", _chat(_data_url(first), detail="low")).json()
    different = live.post("/v1/chat/completions", _chat(_data_url(other), detail="low")).json()

    prompt_tokens = cold["usage"]["prompt_tokens"]
    assert repeated["usage"]["prompt_tokens"] == different["usage"]["prompt_tokens"] == prompt_tokens
    assert repeated["usage"]["prompt_tokens_details"]["cached_tokens"] == (prompt_tokens - 1) // 4 * 4
    assert repeated["choices"][0]["message"]["content"] == cold["choices"][0]["message"]["content"]
    # only the blocks before the first image token are shared
    text = live.served.engine.pretrained.chat_template.render(_template_messages(), image_parts=True)
    first_image_token = live.served.engine.vision.prompt(text, [(other, "low")]).images[0].tile_starts[0]
    assert different["usage"]["prompt_tokens_details"]["cached_tokens"] == first_image_token // 4 * 4
    assert different["choices"][0]["message"]["content"] == _reference_text(vlm, other, "low", 12)[0]


def test_images_in_earlier_turns_and_several_per_message(live, vlm):
    pngs = [_png(20, 20, seed=4), _png(40, 16, seed=5)]
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _data_url(pngs[0])}}]},
        {"role": "assistant", "content": "a circle"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and these?"},
                {"type": "image_url", "image_url": {"url": _data_url(pngs[0]), "detail": "low"}},
                {"type": "image_url", "image_url": {"url": _data_url(pngs[1]), "detail": "low"}},
            ],
        },
    ]
    body = {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 8, "ignore_eos": True}
    too_many = live.post("/v1/chat/completions", body)  # three images; this server takes two
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "too_many_images"

    del messages[2]["content"][1]
    reply = live.post("/v1/chat/completions", body).json()

    template_messages = [
        {"role": "user", "content": [{"type": "image"}]},
        messages[1],
        {"role": "user", "content": [{"type": "text", "text": "and these?"}, {"type": "image"}]},
    ]
    # the first image is one tile (auto), the second asked for low: the reference with "low" for both
    reference = vlm.text_prompt(vlm.chat_template.render(template_messages, image_parts=True), pngs, detail="low")
    expected = vlm.tokenizer.decode(vlm.generate_greedy(reference, 8, stop_token_ids=()))
    assert reply["usage"]["prompt_tokens"] == len(reference.token_ids)
    assert reply["choices"][0]["message"]["content"] == expected


def _bad_requests(live) -> dict[str, dict]:
    png = _png(20, 20, seed=6)
    return {
        "invalid_base64": _chat("data:image/png;base64,iVBORw0KGgo%%%not-base64"),
        "invalid_image": _chat(_data_url(b"this is not an image at all", mime="image/png")),
        "pixel bomb": _chat(_data_url(_header_only_png(5000, 5000))),
        "too_many_images": _chat(*[_data_url(png)] * 3),
        "image_url_not_allowed": _chat("https://example.com/cat.png"),
    }


def test_bad_images_get_a_4xx_while_another_stream_finishes_unchanged(live, vlm):
    png = _png(44, 30, seed=7)
    body = _chat(_data_url(png), detail="high", max_tokens=160)
    expected = live.post("/v1/chat/completions", body).json()["choices"][0]["message"]["content"]
    bad_requests = _bad_requests(live)
    with httpx.Client(base_url=live.url, timeout=60) as client:  # once before: Pillow loads its decoders
        client.post("/v1/chat/completions", json=bad_requests["invalid_image"])
    streamed: list[str] = []
    first_chunk = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{live.url}/v1/chat/completions", json={**body, "stream": True}, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = httpx.Response(200, content=line[6:]).json()["choices"][0]["delta"]
                    streamed.append(delta.get("content") or "")
                    if len(streamed) > 1:  # the first token, after the role chunk
                        first_chunk.set()

    runner = threading.Thread(target=stream)
    runner.start()
    assert first_chunk.wait(60)
    with httpx.Client(base_url=live.url, timeout=60) as client:
        answers = {name: client.post("/v1/chat/completions", json=bad) for name, bad in bad_requests.items()}
    running_meanwhile = runner.is_alive()
    runner.join(120)

    for name, response in answers.items():
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"], name
    codes = {name: r.json()["error"]["code"] for name, r in answers.items()}
    assert codes == {
        "invalid_base64": "invalid_base64",
        "invalid_image": "invalid_image",
        "pixel bomb": "invalid_image",
        "too_many_images": "too_many_images",
        "image_url_not_allowed": "image_url_not_allowed",
    }
    assert "over the limit of 1000000 pixels" in answers["pixel bomb"].json()["error"]["message"]
    assert running_meanwhile  # the bad requests came while the stream was generating
    assert "".join(streamed) == expected
    assert live.served.engine.stats().free_blocks == NUM_BLOCKS


def test_remote_images_come_only_from_allowed_hosts_within_the_byte_limit(live, vlm):
    png = _png(20, 20, seed=8)
    files = Starlette(routes=[Route("/cat.png", lambda request: Response(png, media_type="image/png"))])
    with InProcessServer(files) as host:
        fetched = live.post("/v1/chat/completions", _chat(f"{host.url}/cat.png", detail="low"))
        inline = live.post("/v1/chat/completions", _chat(_data_url(png), detail="low"))
        missing = live.post("/v1/chat/completions", _chat(f"{host.url}/dog.png"))
        live.served.image_limits = ImageLimits(max_image_bytes=len(png) - 1, url_allow=("127.0.0.1",))
        try:
            too_large = live.post("/v1/chat/completions", _chat(f"{host.url}/cat.png"))
        finally:
            live.served.image_limits = ImageLimits(max_images=2, max_pixels=1_000_000, url_allow=("127.0.0.1",))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["choices"][0]["message"] == inline.json()["choices"][0]["message"]
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "image_fetch_failed")
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (400, "image_too_large")


def test_a_text_model_refuses_images_and_lists_only_text(tiny):
    server = Server(Engine(tiny, num_blocks=64), "tiny-text")
    with InProcessServer(create_app(server), served=server) as running:
        body = {**_chat(_data_url(_png(8, 8, seed=9))), "model": "tiny-text"}
        refused = running.post("/v1/chat/completions", body)
        models = httpx.get(f"{running.url}/v1/models").json()["data"]
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "image_input_not_supported")
    assert models[0]["input_modalities"] == ["text"]


def test_the_cli_sets_the_image_limits_and_refuses_nonsense():
    parser = argparse.ArgumentParser()  # llmkit serve's own options (the whole CLI loads every plugin: slow)
    register_serve_commands(CommandRegistrar(parser.add_subparsers(dest="command"), {}))
    hosts = ["--image-url-allow", "images.example.org", "--image-url-allow", "cdn.example.org"]
    sizes = ["--max-images-per-request", "3", "--max-image-bytes", "1000", "--max-image-pixels", "4096"]
    args = parser.parse_args(["serve", *hosts, *sizes])
    assert image_limits_from(args) == ImageLimits(3, 1000, 4096, ("images.example.org", "cdn.example.org"), 10.0)
    assert image_limits_from(parser.parse_args(["serve"])) == ImageLimits()
    with pytest.raises(InvalidParameterError, match="image limits must be positive"):
        image_limits_from(parser.parse_args(["serve", "--max-images-per-request", "0"]))
