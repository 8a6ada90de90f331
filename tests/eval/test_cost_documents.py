"""`llmkit cost --file PDF`: each document strategy's prompt tokens before anything runs, from the model's
tokenizer (text) and image processor (pages), on a tiny vision-language model and a tiny text model."""

from __future__ import annotations

import json
from functools import partial

import pytest
from serve.image_model import build_tiny_vlm

from llmkit.core.cli import main
from llmkit.core.documents import read_pdf, write_text_pdf
from llmkit.core.models.vision.pretrained import load_vision_language
from llmkit.core.testing import write_tiny_model

PAGES = ["Invoice 1042\nTotal due: 318 euros", "Terms: payment within 30 days."]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("docs") / "invoice.pdf"
    path.write_bytes(write_text_pdf(PAGES))
    return str(path)


def _report(capsys, argv: list[str]) -> dict:
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_strategies_on_a_vision_language_model(tmp_path, pdf, capsys):
    model = build_tiny_vlm(tmp_path)
    (tmp_path / "prices.yaml").write_text("models:\n  m: {input: 2.0, output: 8.0}\n")
    report = _report(
        capsys, ["--file", pdf, "-m", str(model), "--file-detail", "high", "--prices", str(tmp_path / "prices.yaml")]
    )

    vlm = load_vision_language(model)
    document = read_pdf(pdf, "both")
    text = sum(len(vlm.tokenizer.encode(f"[invoice.pdf, page {i + 1}]\n{t}\n")) for i, t in enumerate(PAGES))
    pages = sum(map(partial(vlm.num_image_tokens, detail="high"), document.pages))
    assert pages > 2 * 17 * 4  # two letter pages at high detail: 4 x 4 tiles + the global image, 4 tokens each
    assert report["documents"] == {pdf: {"pages": pages, "text": text, "both": pages + text}}
    assert report["document_costs"]["m"][pdf]["text"] == pytest.approx(text * 2.0 / 1e6)
    low = _report(capsys, ["--file", pdf, "-m", str(model), "--file-detail", "low"])["documents"][pdf]
    assert low["text"] == text and low["pages"] < pages


def test_a_text_model_counts_only_text(tmp_path, pdf, capsys):
    model = write_tiny_model(tmp_path / "tiny-text")
    counts = _report(capsys, ["--file", pdf, "-m", str(model)])["documents"][pdf]
    assert counts["pages"] is None and counts["both"] is None and counts["text"] > 10
    assert main(["cost", "--file", str(tmp_path / "missing.pdf"), "-m", str(model)]) == 2
    assert "does not exist" in capsys.readouterr().err
