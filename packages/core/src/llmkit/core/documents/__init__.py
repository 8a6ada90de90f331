"""Documents as model input: a PDF becomes rendered pages (images), extracted text, or both, before any prompt."""

from .pdf import (
    STRATEGIES,
    Document,
    DocumentInputError,
    DocumentLimits,
    document_content_parts,
    read_pdf,
)
from .pdf_writer import write_text_pdf
from .tokens import document_tokens, strategy_token_counts

__all__ = [
    "STRATEGIES",
    "Document",
    "DocumentInputError",
    "DocumentLimits",
    "document_content_parts",
    "document_tokens",
    "read_pdf",
    "strategy_token_counts",
    "write_text_pdf",
]
