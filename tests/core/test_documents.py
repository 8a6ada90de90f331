"""PDFs as model input: text extracted with pypdf, pages rendered with pypdfium2, strategies and their token
counts, and clear errors for broken, encrypted and oversized documents (all on PDFs written here)."""

from __future__ import annotations

import io
import math

import pypdf
import pytest

from llmkit.core.documents import (
    DocumentInputError,
    DocumentLimits,
    document_content_parts,
    read_pdf,
    strategy_token_counts,
    write_text_pdf,
)
from llmkit.core.images import Idefics3ImageProcessor, image_prompt_text

from .vision_fixtures import TILE, build_tokenizer

PAGES = ["Invoice 1042\nTotal due: 318 euros", "Terms: payment within 30 days (net)."]


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return write_text_pdf(PAGES, boxes=True)


def test_text_is_extracted_page_by_page(pdf):
    document = read_pdf(pdf, "text")
    assert document.page_count == 2 and document.pages == []
    assert [t.strip() for t in document.texts] == PAGES


def test_pages_render_to_the_longest_edge_with_the_page_aspect(pdf, tmp_path):
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    document = read_pdf(path, "pages", DocumentLimits(page_longest_edge=792))
    assert document.name == "letter.pdf" and document.texts == []
    assert [p.size for p in document.pages] == [(612, 792), (612, 792)]  # 1 pixel per point
    landscape = read_pdf(
        write_text_pdf(["wide"], width=842, height=595), "pages", DocumentLimits(page_longest_edge=421)
    )
    assert landscape.pages[0].size == (421, round(595 / 2))
    page = document.pages[0]
    assert page.mode == "RGB"
    assert page.getpixel((306, 792 - 300)) == (51, 102, 204)  # the drawn box (0.2 0.4 0.8) is there
    assert page.getpixel((10, 10)) == (255, 255, 255)


def test_both_interleaves_each_page_image_and_its_text(pdf):
    parts, images = document_content_parts(read_pdf(pdf, "both", name="invoice.pdf"))
    assert [p["type"] for p in parts] == ["image", "text", "image", "text"]
    assert parts[1]["text"] == "[invoice.pdf, page 1]\n" + PAGES[0] + "\n"
    assert len(images) == 2


def test_strategy_token_counts_use_the_tokenizer_and_the_image_processor(pdf):
    tokenizer = build_tokenizer()
    processor = Idefics3ImageProcessor(tile_size=TILE, longest_edge=4 * TILE)

    def count_text(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    def count_image(image) -> int:
        return len(tokenizer.encode(processor.prompt_text(processor.process(image, "high"), 4)).ids)

    counts = strategy_token_counts(pdf, count_text, count_image)
    text = sum(count_text(f"[document.pdf, page {i + 1}]\n{t}\n") for i, t in enumerate(PAGES))
    # a letter page resized to a longest edge of 128 is about 99 x 128: 4 x 4 tiles of 32 plus the global image
    cols, rows = math.ceil(99 / TILE), math.ceil(128 / TILE)
    page = len(tokenizer.encode(image_prompt_text(rows, cols, 4)).ids)
    assert page == 17 * 4 + len(tokenizer.encode(image_prompt_text(rows, cols, 0)).ids)
    assert counts == {"pages": 2 * page, "text": text, "both": 2 * page + text}
    assert strategy_token_counts(pdf, count_text, None) == {"pages": None, "text": text, "both": None}


@pytest.mark.parametrize("strategy", ["pages", "text", "both"])
def test_broken_pdfs_are_refused_clearly(pdf, strategy):
    with pytest.raises(DocumentInputError, match="not a PDF"):
        read_pdf(b"\x89PNG\r\n\x1a\n....", strategy)
    with pytest.raises(DocumentInputError, match="cannot open the PDF|not a readable PDF"):
        read_pdf(pdf[: len(pdf) // 3], strategy)
    with pytest.raises(DocumentInputError, match="cannot open the PDF|not a readable PDF"):
        read_pdf(b"%PDF-1.4\n" + b"\x00garbage" * 20, strategy)


@pytest.mark.parametrize("strategy", ["pages", "text"])
def test_encrypted_pdf_is_refused(pdf, strategy):
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret", algorithm="RC4-128")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    with pytest.raises(DocumentInputError, match="encrypted"):
        read_pdf(encrypted.getvalue(), strategy)


def test_limits_and_bad_arguments(pdf, tmp_path):
    with pytest.raises(DocumentInputError, match="3 pages; the limit is 2"):
        read_pdf(write_text_pdf(["a", "b", "c"]), "pages", DocumentLimits(max_pages=2))
    with pytest.raises(DocumentInputError, match="over the limit of 100 bytes"):
        read_pdf(pdf, "text", DocumentLimits(max_bytes=100))
    with pytest.raises(DocumentInputError, match="strategy must be one of pages, text, both"):
        read_pdf(pdf, "ocr")
    with pytest.raises(DocumentInputError, match="does not exist"):
        read_pdf(tmp_path / "missing.pdf")
    with pytest.raises(DocumentInputError, match="no text could be extracted"):
        read_pdf(write_text_pdf([""]), "text")
