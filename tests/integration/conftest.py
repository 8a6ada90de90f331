"""Fixtures for tests that need more than one llmkit package."""

from __future__ import annotations

import pytest

from llmkit.core.backends import ModelBackend


@pytest.fixture(scope="session")
def tiny_backend(tiny):
    return ModelBackend(tiny)
