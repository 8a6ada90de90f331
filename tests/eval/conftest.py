"""Fixtures for llmkit-eval's tests: scripted backends and a tiny real model."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmkit.core.assistant_output import AssistantMessage
from llmkit.core.backends import ChatChoice, ChatResult, Loglikelihood, ModelBackend
from llmkit.core.generate import Completion, GenerationOutput


class ScriptedBackend:
    """A `Backend` whose answers come from functions of the prompt: deterministic tests of eval's logic."""

    name = "scripted"
    context_length = 4096

    def __init__(
        self, reply: Callable[[str], str] = lambda prompt: "", score: Callable[[str, str], float] | None = None
    ):
        self.reply, self.score = reply, score or (lambda context, continuation: -float(len(continuation)))
        self.calls = 0

    @property
    def tokenizer(self):
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts, params):
        self.calls += 1
        params = params if isinstance(params, list | tuple) else [params] * len(prompts)
        return [
            GenerationOutput(
                [0] * self.count_tokens(p), [Completion([1, 2], self.reply(p), "stop") for _ in range(sp.n)]
            )
            for p, sp in zip(prompts, params, strict=True)
        ]

    def chat(self, conversations, params, tools=None):
        self.calls += 1
        params = params if isinstance(params, list | tuple) else [params] * len(conversations)
        results = []
        for messages, sp in zip(conversations, params, strict=True):
            text = self.reply(messages[-1]["content"])
            results.append(
                ChatResult([ChatChoice(AssistantMessage(text), text, "stop", [1, 2]) for _ in range(sp.n)], 3)
            )
        return results

    def loglikelihood(self, requests):
        self.calls += 1
        return [Loglikelihood(self.score(c, x), False, 1) for c, x in requests]


@pytest.fixture(scope="session")
def scripted():
    return ScriptedBackend


@pytest.fixture(scope="session")
def tiny_backend(tiny):
    return ModelBackend(tiny)


@pytest.fixture(scope="session")
def tiny_long_dir(tmp_path_factory):
    """A tiny random model with a 2048-token context (judge and probe prompts are long)."""
    from llmkit.core.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_position_embeddings=2048)


@pytest.fixture(scope="session")
def tiny_long(tiny_long_dir):
    from llmkit.core import load_pretrained

    return load_pretrained(tiny_long_dir)
