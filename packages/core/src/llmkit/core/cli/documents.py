"""`--file` on `llmkit generate` and `llmkit chat`: PDFs before the prompt, as text, rendered pages, or both.

Text (`--file-strategy text`, the default) works with any model: each page's extracted text goes before the
prompt. Pages (`pages`, `both`) need a vision-language model (Idefics3 / SmolVLM, LLaVA); `llmkit generate`
then decodes greedily with core's reference decoder (`--temperature 0`), and `llmkit chat` refuses them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..documents import STRATEGIES, DocumentLimits, document_content_parts, read_pdf
from ..errors import InvalidParameterError
from ..images import DETAILS


def add_file_arguments(parser: argparse.ArgumentParser, *, pages: bool = True) -> None:
    group = parser.add_argument_group("documents")
    group.add_argument(
        "--file", action="append", default=[], metavar="PDF", help="a PDF before the prompt (repeatable)"
    )
    strategies = STRATEGIES if pages else ("text",)
    group.add_argument(
        "--file-strategy",
        choices=strategies,
        default="text",
        help="text: extracted text (any model); pages: rendered pages as images; both (vision-language models)",
    )
    if pages:
        group.add_argument("--file-detail", choices=DETAILS, default="auto", help="detail of rendered pages")
    group.add_argument("--max-file-pages", type=int, default=DocumentLimits.max_pages, help="pages per PDF")


def file_content(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list]:
    """The content parts (text parts, `{"type": "image"}` per page image) of every `--file`, and the page images."""
    limits = DocumentLimits(max_pages=args.max_file_pages)
    parts: list[dict[str, Any]] = []
    images: list = []
    for path in args.file:
        document_parts, pages = document_content_parts(read_pdf(path, args.file_strategy, limits))
        parts += document_parts
        images += pages
    return parts, images


def text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for part in parts)


def generate_with_pages(args: argparse.Namespace, parts: list[dict[str, Any]], images: list) -> int:
    """`llmkit generate --file ... --file-strategy pages|both` on a vision-language model (greedy)."""
    from ..device import resolve_device
    from ..models import store
    from ..models.vision.pretrained import load_vision_language

    if args.temperature != 0 or args.raw:
        raise InvalidParameterError(
            "rendered pages are decoded greedily by llmkit generate: pass --temperature 0 (and no --raw); "
            "for sampling, send the PDF to llmkit serve as a file content part"
        )
    vlm = load_vision_language(
        store.resolve(args.model), device=resolve_device(args.device), chat_template=args.chat_template
    )
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": [*parts, {"type": "text", "text": args.prompt}]})
    prompt = vlm.chat_prompt(messages, images, detail=args.file_detail)
    ids = vlm.generate_greedy(prompt, args.max_tokens)
    sys.stdout.write(vlm.tokenizer.decode(ids) + "\n")
    return 0
