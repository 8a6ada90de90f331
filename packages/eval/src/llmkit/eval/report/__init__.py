"""The self-contained HTML report of a run: tables, CIs and plots embedded as PNG data URIs."""

from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
