"""`llmkit agent run` without --backend uses a backend the installed packages provide (found through core's
backend registry), says so when it falls back from the engine, and says what to do when no local one is there.
The registry is simulated: core's `registry("backends")` answers with scripted backends under chosen names."""

from __future__ import annotations

import pytest

from llmkit.core import plugins
from llmkit.core.cli import main
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call

ARGS = ["agent", "run", "What is 6 * 7?", "--tools", "calculator", "--tool-choice", "required"]


def scripted_model(messages):
    if not any(m["role"] == "tool" for m in messages):
        return hermes_call("calculator", {"expression": "6 * 7"})
    return hermes_call("final_answer", {"answer": "42"})


@pytest.fixture
def installed(monkeypatch):
    """installed("reference", "openai"): the backends registry holds exactly these (each a scripted backend that
    records its name in `opened` when built)."""
    opened: list[tuple[str, dict]] = []
    real = plugins.registry

    def install(*names: str) -> list[tuple[str, dict]]:
        simulated = plugins.Registry("backends")
        for name in names:

            def factory(_name=name, **options):
                opened.append((_name, options))
                return ScriptedBackend(respond=scripted_model)

            simulated.add(name, factory, "test")
        monkeypatch.setattr(plugins, "registry", lambda kind: simulated if kind == "backends" else real(kind))
        return opened

    return install


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_engine_is_the_default_where_llmkit_serve_is_installed(installed, capsys):
    opened = installed("reference", "engine", "openai")
    code, out, err = run_cli(capsys, *ARGS)
    assert code == 0 and out.strip() == "42", err
    assert [name for name, _ in opened] == ["engine"] and opened[0][1]["chat_template"] == "chatml"
    assert "reference backend" not in err


def test_without_the_engine_the_default_is_the_reference_backend_and_it_says_so(installed, capsys):
    opened = installed("reference", "openai")
    code, out, err = run_cli(capsys, *ARGS)
    assert code == 0 and out.strip() == "42", err
    assert [name for name, _ in opened] == ["reference"] and opened[0][1]["chat_template"] == "chatml"
    assert "llmkit: using the reference backend" in err and "llmkit-serve's engine is not installed" in err


def test_a_named_backend_is_used_as_named(installed, capsys):
    opened = installed("reference", "openai")
    code, out, _ = run_cli(capsys, *ARGS, "--backend", "openai", "--backend-option", "base_url=http://h/v1")
    assert code == 0 and out.strip() == "42"
    assert opened == [("openai", {"base_url": "http://h/v1"})]  # no chat template for an HTTP backend
    code, _, err = run_cli(capsys, *ARGS, "--backend", "engine")
    assert code == 2 and "no backends entry named 'engine' is installed (installed: openai, reference)" in err


def test_without_a_local_backend_the_message_says_what_to_do(installed, capsys):
    opened = installed("openai")
    code, out, err = run_cli(capsys, *ARGS)
    assert code == 2 and out == "" and opened == []
    assert "llmkit: error: no local model backend is installed (engine: llmkit-serve; reference: llmkit-core)" in err
    assert "choose one of the installed backends with --backend: openai" in err and "Traceback" not in err
    installed()
    code, _, err = run_cli(capsys, *ARGS)
    assert code == 2 and "no model backend is installed: install llmkit-serve for the local engine" in err


def test_default_backend_prefers_the_engine_then_reference():
    from llmkit.orchestrate.backend_choice import REFERENCE_NOTE, default_backend

    assert default_backend(["openai", "reference", "engine"]) == ("engine", None)
    assert default_backend(["openai", "reference"]) == ("reference", REFERENCE_NOTE)
    # core registers `reference` itself, so every install of llmkit-orchestrate has a default
    assert default_backend(plugins.registry("backends").names())[0] in ("engine", "reference")
