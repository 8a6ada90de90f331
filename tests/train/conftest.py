"""Fixtures of the llmkit-train tests: tiny models and small record files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory) -> Path:
    records = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} + {i}?"},
                {"role": "assistant", "content": f"{i} + {i} = {2 * i}."},
            ]
        }
        for i in range(12)
    ]
    return write_records(tmp_path_factory.mktemp("data") / "chat.jsonl", records)


@pytest.fixture(scope="session")
def preference_data(tmp_path_factory) -> Path:
    records = [
        {
            "prompt": [{"role": "user", "content": f"Is {i} even?"}],
            "chosen": "yes" if i % 2 == 0 else "no",
            "rejected": "the quick brown fox",
            "margin": 0.5,
        }
        for i in range(12)
    ]
    return write_records(tmp_path_factory.mktemp("data") / "pairs.jsonl", records)


@pytest.fixture(scope="session")
def prompt_data(tmp_path_factory) -> Path:
    records = [
        {
            "prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
            "reference": str(i + 1),
            "verifier": "math_answer",
        }
        for i in range(8)
    ]
    return write_records(tmp_path_factory.mktemp("data") / "prompts.jsonl", records)


@pytest.fixture
def fast(tiny_model_dir, tmp_path) -> dict:
    """Options every quick training test shares."""
    return {
        "model": str(tiny_model_dir),
        "output_dir": str(tmp_path / "run"),
        "progress": False,
        "learning_rate": 1e-3,
        "max_length": 128,
    }
