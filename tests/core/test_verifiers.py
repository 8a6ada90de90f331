"""The verifier call convention and registry lookups."""

from __future__ import annotations

import pytest

from llmkit.core.errors import InvalidParameterError, PluginError
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult, get_verifier, verifier_names, verify


class _Plugin:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register(
            "test_contains", lambda prompt, completion, reference: VerifierResult.from_bool(reference in completion)
        )
        register("test_broken", lambda prompt, completion, reference: True)


@pytest.fixture
def plugin():
    register_plugin(_Plugin(), "test-verifiers")
    yield
    unregister_plugin("test-verifiers")


def test_registered_verifier_is_found_and_called(plugin):
    assert {"test_contains", "test_broken"} <= set(verifier_names())
    assert verify("test_contains", "q", "the answer is 42", "42") == VerifierResult(True, 1.0)
    assert not get_verifier("test_contains")("q", "no", "42").passed


def test_a_verifier_returning_the_wrong_type_is_a_plugin_error(plugin):
    with pytest.raises(PluginError, match="returned bool, expected VerifierResult"):
        verify("test_broken", "q", "c", "r")


def test_unknown_verifier_names_what_is_installed(plugin):
    with pytest.raises(PluginError, match="no verifiers entry named 'nope'.*test_contains"):
        get_verifier("nope")


def test_score_outside_unit_interval_is_rejected():
    with pytest.raises(InvalidParameterError, match=r"score must be in \[0, 1\]"):
        VerifierResult(True, 1.5)
