"""PDFs through the server's OpenAI `file` content part: pages as images (usage counts their image tokens), text
parts, both; and a broken or encrypted PDF a 400 while another stream finishes unchanged."""

from __future__ import annotations

import base64
import io
import threading

import httpx
import pypdf
import pytest
from image_model import build_tiny_vlm
from live_servers import InProcessServer

from llmkit.core.cli import main
from llmkit.core.documents import read_pdf, write_text_pdf
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine
from llmkit.serve.server.app import Server, create_app
from llmkit.serve.server.document_parts import DOCUMENT_LIMITS

NUM_BLOCKS = 512
MODEL = "tiny-vlm"
PAGES = ["Invoice 1042\nTotal due: 318 euros", "Terms: payment within 30 days."]
QUESTION = "what is the total?"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return load_vision_language(build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-documents")))


@pytest.fixture(scope="module")
def live(vlm):
    server = Server(Engine(vlm, num_blocks=NUM_BLOCKS, block_size=4), MODEL)
    with InProcessServer(create_app(server), served=server) as running:
        yield running


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return write_text_pdf(PAGES, boxes=True)


def _file_part(data: bytes, **fields) -> dict:
    url = "data:application/pdf;base64," + base64.b64encode(data).decode()
    return {"type": "file", "file": {"file_data": url, "filename": "invoice.pdf", **fields}}


def _chat(part: dict, max_tokens: int = 8, **extra) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": [part, {"type": "text", "text": QUESTION}]}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        **extra,
    }


def _reference(vlm, pdf: bytes, strategy: str, detail: str, max_tokens: int) -> tuple[str, int]:
    """Core's prompt of the same chat built by hand from the rendered pages and extracted texts, and its greedy
    tokens (non-paged reference decode) as text, one by one (a random model's bytes are rarely whole UTF-8)."""
    document = read_pdf(pdf, strategy, DOCUMENT_LIMITS, name="invoice.pdf")
    parts = []
    for index in range(document.page_count):
        if document.pages:
            parts.append({"type": "image"})
        if document.texts:
            parts.append(
                {"type": "text", "text": f"[invoice.pdf, page {index + 1}]\n{document.texts[index].strip()}\n"}
            )
    messages = [{"role": "user", "content": [*parts, {"type": "text", "text": QUESTION}]}]
    text = vlm.chat_template.render(messages, image_parts=True)
    prompt = vlm.text_prompt(text, document.pages, detail=detail)
    ids = vlm.generate_greedy(prompt, max_tokens, stop_token_ids=())
    return [vlm.tokenizer.decode([i], skip_special_tokens=False) for i in ids], len(prompt.token_ids)


@pytest.mark.parametrize("strategy", ["pages", "text", "both"])
def test_a_pdf_file_part_answers_like_the_reference_and_counts_its_pages(live, vlm, pdf, strategy):
    body = _chat(_file_part(pdf, strategy=strategy, detail="high"), logprobs=True)
    response = live.post("/v1/chat/completions", body)

    assert response.status_code == 200, response.text
    expected, prompt_tokens = _reference(vlm, pdf, strategy, "high", 8)
    reply = response.json()
    assert [entry["token"] for entry in reply["choices"][0]["logprobs"]["content"]] == expected  # greedy tokens
    assert reply["usage"]["prompt_tokens"] == prompt_tokens
    if strategy != "text":  # two letter pages at high detail: 4 x 4 tiles + the global image, 4 tokens a tile
        assert prompt_tokens > 2 * 17 * 4


def test_the_default_strategy_on_a_vision_model_is_both(live, vlm, pdf):
    response = live.post("/v1/chat/completions", _chat(_file_part(pdf)))
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] == _reference(vlm, pdf, "both", "auto", 1)[1]


def _encrypted(pdf: bytes) -> bytes:
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_bad_pdfs_get_a_400_while_another_stream_finishes_unchanged(live, vlm, pdf):
    body = _chat(_file_part(pdf, strategy="both", detail="low"), max_tokens=300)
    expected = live.post("/v1/chat/completions", body).json()["choices"][0]["message"]["content"]
    bad_requests = {
        "broken": (_chat(_file_part(pdf[: len(pdf) // 3])), "invalid_file"),
        "encrypted": (_chat(_file_part(_encrypted(pdf), strategy="pages")), "invalid_file"),
        "not a pdf": (_chat(_file_part(b"\x89PNG\r\n\x1a\n")), "invalid_file"),
        "bad base64": (
            _chat({"type": "file", "file": {"file_data": "data:application/pdf;base64,%%%"}}),
            "invalid_base64",
        ),
        "bad strategy": (_chat(_file_part(pdf, strategy="ocr")), "invalid_value"),
        "file_id": (_chat({"type": "file", "file": {"file_id": "file-1"}}), "unsupported_parameter"),
    }
    streamed: list[str] = []
    first_chunk = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{live.url}/v1/chat/completions", json={**body, "stream": True}, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = httpx.Response(200, content=line[6:]).json()["choices"][0]["delta"]
                    streamed.append(delta.get("content") or "")
                    if len(streamed) > 1:
                        first_chunk.set()

    runner = threading.Thread(target=stream)
    runner.start()
    assert first_chunk.wait(60)
    with httpx.Client(base_url=live.url, timeout=60) as client:
        answers = {name: client.post("/v1/chat/completions", json=bad) for name, (bad, _) in bad_requests.items()}
    running_meanwhile = runner.is_alive()
    runner.join(120)

    for name, response in answers.items():
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"]["code"] == bad_requests[name][1], (name, response.text)
    assert "encrypted" in answers["encrypted"].json()["error"]["message"]
    assert running_meanwhile
    assert "".join(streamed) == expected
    assert live.served.engine.stats().free_blocks == NUM_BLOCKS


def test_a_text_model_takes_a_pdf_as_text_and_refuses_its_pages(tmp_path, pdf):
    path = write_tiny_model(tmp_path / "tiny-text", max_position_embeddings=1024)
    server = Server(Engine(path, num_blocks=128, block_size=4), "tiny-text")
    with InProcessServer(create_app(server), served=server) as text_live:
        as_text = text_live.post("/v1/chat/completions", {**_chat(_file_part(pdf)), "model": "tiny-text"})
        as_pages = text_live.post(
            "/v1/chat/completions", {**_chat(_file_part(pdf, strategy="pages")), "model": "tiny-text"}
        )

    assert as_text.status_code == 200, as_text.text
    pages = "".join(f"[invoice.pdf, page {i + 1}]\n{text}\n" for i, text in enumerate(PAGES))
    prompt = server.engine.pretrained.chat_prompt([{"role": "user", "content": pages + QUESTION}])
    assert as_text.json()["usage"]["prompt_tokens"] == len(prompt)  # the default strategy of a text model: text
    assert as_pages.status_code == 400
    assert as_pages.json()["error"]["code"] == "image_input_not_supported"


def test_llmkit_generate_file_pages_on_a_vision_model_equals_the_reference(vlm, pdf, tmp_path, capsys):
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    argv = ["generate", QUESTION, "--file", str(path), "--file-strategy", "pages", "--file-detail", "high"]
    assert main([*argv, "-m", str(vlm.path), "--temperature", "0", "--max-tokens", "8"]) == 0

    document = read_pdf(pdf, "pages")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = vlm.chat_prompt(messages, document.pages, detail="high")
    assert capsys.readouterr().out == vlm.tokenizer.decode(vlm.generate_greedy(prompt, 8)) + "\n"
