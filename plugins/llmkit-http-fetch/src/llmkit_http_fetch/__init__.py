"""A read-only HTTP fetch tool for llmkit agents (GET only, allow-listed hosts, off by default)."""

from .fetch import AllowList, HttpFetchToolbox

__all__ = ["AllowList", "HttpFetchToolbox"]
