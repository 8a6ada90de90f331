"""Fixtures shared by every package's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOLDEN = SHARED / "golden" / "smollm2-135m-instruct.json"


@pytest.fixture(scope="session")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.fail(f"golden outputs missing: {GOLDEN} (CI places ../shared beside the checkout)")
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The default model's GGUF, pulled into $LLMKIT_HOME on first use."""
    from llmkit.core.models.store import DEFAULT_MODEL, pull

    return pull(DEFAULT_MODEL, quiet=True).path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    from llmkit.core import load_pretrained

    return load_pretrained(smollm2_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from llmkit.core.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from llmkit.core import load_pretrained

    return load_pretrained(tiny_model_dir)
