"""`llmkit generate --file` / `llmkit chat --file`: a PDF's text before the prompt on a text model (the same
reply as the text typed in), and clear errors for pages on a text model, sampling over pages, broken files."""

from __future__ import annotations

import io
import sys

import pytest

from llmkit.core.cli import main
from llmkit.core.documents import write_text_pdf
from llmkit.core.testing import write_tiny_model

PAGES = ["Invoice 1042\nTotal due: 318 euros", "Terms: payment within 30 days."]
DECODE = ["--temperature", "0", "--max-tokens", "6"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(write_tiny_model(tmp_path_factory.mktemp("tiny-text")))


@pytest.fixture
def pdf(tmp_path) -> str:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(write_text_pdf(PAGES))
    return str(path)


def _reply(capsys, argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_generate_with_a_pdf_as_text_equals_the_text_typed_in(capsys, model, pdf):
    typed = "".join(f"[invoice.pdf, page {i + 1}]\n{text}\n" for i, text in enumerate(PAGES)) + "What is due?"
    with_file = _reply(capsys, ["generate", "What is due?", "--file", pdf, "-m", model, *DECODE])
    assert with_file == _reply(capsys, ["generate", typed, "-m", model, *DECODE])
    assert with_file != _reply(capsys, ["generate", "What is due?", "-m", model, *DECODE])


def test_chat_puts_the_pdf_text_in_the_first_message(capsys, monkeypatch, model, pdf):
    typed = "".join(f"[invoice.pdf, page {i + 1}]\n{text}\n" for i, text in enumerate(PAGES)) + "What is due?"
    monkeypatch.setattr(sys, "stdin", io.StringIO("What is due?\n"))
    with_file = _reply(capsys, ["chat", "--file", pdf, "-m", model, *DECODE])
    assert _reply(capsys, ["generate", typed, "-m", model, *DECODE]).strip() in with_file


def test_pages_and_broken_files_are_clear_errors(capsys, model, pdf, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n" + b"\x00" * 64)
    assert main(["generate", "q", "--file", str(broken), "-m", model, *DECODE]) == 2
    assert "broken.pdf: not a readable PDF" in capsys.readouterr().err
    assert main(["generate", "q", "--file", pdf, "--file-strategy", "pages", "-m", model]) == 2
    assert "pass --temperature 0" in capsys.readouterr().err
    assert main(["generate", "q", "--file", pdf, "--file-strategy", "both", "-m", model, *DECODE]) == 2
    assert "is not an Idefics3 / SmolVLM directory" in capsys.readouterr().err
