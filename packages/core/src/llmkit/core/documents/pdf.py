"""Read a PDF for a model: pages rendered with pypdfium2, text extracted with pypdf.

Strategies (the trade-off between cost and precision): `pages` = each page as an image (layout, figures and
tables kept; costs image tokens), `text` = the extracted text only (cheap; loses layout, and a scan has none),
`both` = each page's image followed by its text. Broken, encrypted and oversized PDFs are refused with a
`DocumentInputError` before anything reaches a model."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import LlmkitError

STRATEGIES = ("pages", "text", "both")
_PDFIUM_LOCK = threading.Lock()  # pdfium is not thread-safe; the server reads documents off the event loop


class DocumentInputError(LlmkitError, ValueError):
    """A document that cannot be used: not a PDF, broken, encrypted, over a limit, or without what was asked."""


@dataclasses.dataclass(frozen=True)
class DocumentLimits:
    """`max_pages` per document, `max_bytes` encoded, `page_longest_edge` pixels of a rendered page."""

    max_pages: int = 32
    max_bytes: int = 32 * 2**20
    page_longest_edge: int = 1536

    def __post_init__(self) -> None:
        if min(self.max_pages, self.max_bytes, self.page_longest_edge) < 1:
            raise DocumentInputError(f"document limits must be positive, got {self}")


@dataclasses.dataclass
class Document:
    """A read PDF: `pages` (rendered, RGB) when the strategy needs them, `texts` (one per page) when it does."""

    name: str
    strategy: str
    page_count: int
    pages: list[Image.Image]
    texts: list[str]


def read_pdf(
    source: bytes | str | os.PathLike[str],
    strategy: str = "both",
    limits: DocumentLimits = DocumentLimits(),
    *,
    name: str | None = None,
) -> Document:
    """Read `source` (bytes or a path) under `limits` for `strategy` (`pages`, `text` or `both`)."""
    if strategy not in STRATEGIES:
        raise DocumentInputError(f"document strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    data, name = _pdf_bytes(source, name, limits.max_bytes)
    texts = _extract_text(data, name, limits) if strategy in ("text", "both") else []
    pages = _render_pages(data, name, limits) if strategy in ("pages", "both") else []
    count = len(pages) or len(texts)
    if strategy == "text" and not any(t.strip() for t in texts):
        raise DocumentInputError(
            f"{name}: no text could be extracted (a scanned document?); use the strategy pages or both"
        )
    return Document(name, strategy, count, pages, texts)


def document_content_parts(document: Document) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """Chat content parts for the document (`{"type": "image"}` per page image, text parts per page text, in page
    order), and the page images in the order of their image parts."""
    parts: list[dict[str, Any]] = []
    for index in range(document.page_count):
        if document.pages:
            parts.append({"type": "image"})
        if document.texts:
            text = document.texts[index].strip()
            parts.append({"type": "text", "text": f"[{document.name}, page {index + 1}]\n{text}\n"})
    return parts, list(document.pages)


def _pdf_bytes(source: bytes | str | os.PathLike[str], name: str | None, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        data, name = bytes(source), name or "document.pdf"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DocumentInputError(f"document file {path} does not exist")
        if path.stat().st_size > max_bytes:
            raise DocumentInputError(f"{path}: {path.stat().st_size} bytes is over the limit of {max_bytes} bytes")
        data, name = path.read_bytes(), name or path.name
    if len(data) > max_bytes:
        raise DocumentInputError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data.lstrip()[:5] == b"%PDF-":
        raise DocumentInputError(f"{name} is not a PDF (it does not start with %PDF-)")
    return data, name


def _check_page_count(count: int, name: str, limits: DocumentLimits) -> None:
    if count == 0:
        raise DocumentInputError(f"{name}: the PDF has no pages")
    if count > limits.max_pages:
        raise DocumentInputError(f"{name}: the PDF has {count} pages; the limit is {limits.max_pages}")


def _extract_text(data: bytes, name: str, limits: DocumentLimits) -> list[str]:
    import pypdf  # imported on use: about a second, and the CLI registers --file on every start

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentInputError(f"{name}: the PDF is encrypted (password-protected); send it decrypted")
        _check_page_count(len(reader.pages), name, limits)
        return [page.extract_text() or "" for page in reader.pages]
    except DocumentInputError:
        raise
    except (pypdf.errors.FileNotDecryptedError, NotImplementedError) as err:
        raise DocumentInputError(f"{name}: the PDF is encrypted and cannot be read ({err})") from None
    except Exception as err:  # pypdf raises many types (PdfReadError, ValueError, KeyError ...) on broken files
        raise DocumentInputError(f"{name}: not a readable PDF ({type(err).__name__}: {err})") from None


def _render_pages(data: bytes, name: str, limits: DocumentLimits) -> list[Image.Image]:
    with _PDFIUM_LOCK:
        return _render_pages_locked(data, name, limits)


def _render_pages_locked(data: bytes, name: str, limits: DocumentLimits) -> list[Image.Image]:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as err:
        reason = "it is encrypted (password-protected)" if "password" in str(err).lower() else str(err)
        raise DocumentInputError(f"{name}: cannot open the PDF: {reason}") from None
    try:
        _check_page_count(len(pdf), name, limits)
        images = []
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                width, height = page.get_size()
                if min(width, height) <= 0:
                    raise DocumentInputError(f"{name}: page {index + 1} has an empty size {width}x{height}")
                scale = limits.page_longest_edge / max(width, height)
                bitmap = page.render(scale=scale)
                try:
                    images.append(bitmap.to_pil().convert("RGB"))
                finally:
                    bitmap.close()
            finally:
                page.close()
        return images
    except pypdfium2.PdfiumError as err:
        raise DocumentInputError(f"{name}: cannot render the PDF ({err})") from None
    finally:
        pdf.close()
