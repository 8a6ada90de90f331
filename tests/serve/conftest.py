"""Fixtures for engine and server tests."""

from __future__ import annotations

import pytest

from llmkit.serve.engine import Engine


@pytest.fixture
def make_engine(tiny):
    """An engine over the session's tiny model; keyword arguments are EngineConfig fields."""

    def make(**config) -> Engine:
        config.setdefault("num_blocks", 256)
        return Engine(tiny, **config)

    return make
