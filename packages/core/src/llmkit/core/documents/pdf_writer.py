"""A minimal PDF writer (one Helvetica text block per page, drawn shapes optional): test and benchmark documents
made on the spot, without a PDF library that writes."""

from __future__ import annotations

from collections.abc import Sequence


def write_text_pdf(
    pages: Sequence[str], *, width: float = 612, height: float = 792, font_size: float = 14, boxes: bool = False
) -> bytes:
    """A PDF of `len(pages)` pages of `width` x `height` points, each page's text in lines from the top left;
    with `boxes`, a filled rectangle under the text (something to see when the page is rendered)."""
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree (filled below)
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for text in pages:
        lines = [f"BT /F1 {font_size:g} Tf {1.2 * font_size:g} TL 72 {height - 72:g} Td"]
        for line in text.split("\n"):
            lines.append(f"({_escape(line)}) Tj T*")
        lines.append("ET")
        if boxes:
            lines.insert(0, f"0.2 0.4 0.8 rg 72 {height / 4:g} {width - 144:g} {height / 4:g} re f 0 0 0 rg")
        stream = "\n".join(lines).encode("cp1252")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R >>" % (f"{width:g}".encode(), f"{height:g}".encode(), font_id, content_id)
        )
        page_ids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
