"""The `llmkit` command line on the default model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def llmkit(*args, input=None, home=None):
    env = dict(os.environ)
    if home is not None:
        env["LLMKIT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "llmkit.core.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def home(smollm2_path):
    """The store the session's fixture pulled into (the CLI must find it there, not download again)."""
    return smollm2_path.parents[2]


def test_pull_twice_is_a_no_op(home):
    result = llmkit("pull", home=home)
    assert result.returncode == 0, result.stderr
    assert "already present" in result.stdout


def test_models_lists_the_pulled_model(home):
    result = llmkit("models", home=home)
    assert result.returncode == 0 and "smollm2-135m-instruct" in result.stdout and "local" in result.stdout


def test_tokenize_shows_pieces_and_ids(home):
    result = llmkit("tokenize", "Hello world 42", home=home)
    assert result.returncode == 0, result.stderr
    assert "[19556, 905, 216, 36, 34]" in result.stdout


def test_generate_greedy_streams_the_golden_answer(home, golden):
    result = llmkit("generate", golden["cases"][0]["prompt"], "--temperature", "0", "--max-tokens", "32", home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The capital of France is Paris."


def test_chat_keeps_history_and_resets(home):
    script = "What is the capital of France?\n/reset\nList three colors.\n/exit\n"
    result = llmkit("chat", "--temperature", "0", "--max-tokens", "24", input=script, home=home)
    assert result.returncode == 0, result.stderr
    assert "The capital of France is Paris." in result.stdout
    assert "(conversation cleared)" in result.stdout
    assert "1. Red" in result.stdout


def test_errors_are_one_line_without_traceback(home):
    result = llmkit("generate", "hi", "--model", "gpt-17", home=home)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("llmkit: error: unknown model 'gpt-17'")
    assert "Traceback" not in result.stderr
    result = llmkit("generate", "hi", "--top-p", "0", home=home)
    assert result.returncode == 2 and "top_p must be in (0, 1]" in result.stderr


def test_plugins_lists_core_registrations(home):
    result = llmkit("plugins", home=home)
    assert result.returncode == 0
    assert "llmkit-core" in result.stdout and "model_loaders" in result.stdout and "gguf" in result.stdout
