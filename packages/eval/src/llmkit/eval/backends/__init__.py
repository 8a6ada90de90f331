"""Backends llmkit-eval registers: an OpenAI-compatible HTTP client."""
