"""Fixtures for llmkit-context: the tiny random model as a real backend, and a scripted fake backend."""

from __future__ import annotations

import pytest

from llmkit.core.assistant_output import AssistantMessage
from llmkit.core.backends import ChatChoice, ChatResult, Loglikelihood, ModelBackend


class ScriptedBackend:
    """A `Backend` whose chat replies come from a script (deterministic model output for policy tests).

    Tokenizer, template and context length are the tiny model's, so token counts are real.
    """

    name = "scripted"

    def __init__(self, real: ModelBackend, replies=(), loglikelihoods=None):
        self.real = real
        self.replies = list(replies)
        self.conversations: list[list[dict]] = []
        self.loglikelihoods = loglikelihoods or {}

    @property
    def tokenizer(self):
        return self.real.tokenizer

    @property
    def chat_template(self):
        return self.real.chat_template

    @property
    def context_length(self):
        return self.real.context_length

    def count_tokens(self, text):
        return self.real.count_tokens(text)

    def generate(self, prompts, params):
        raise NotImplementedError("the scripted backend only chats")

    def chat(self, conversations, params, tools=None):
        results = []
        for conversation in conversations:
            self.conversations.append([dict(m) for m in conversation])
            if not self.replies:
                raise AssertionError("the scripted backend ran out of replies")
            text = self.replies.pop(0)
            results.append(ChatResult([ChatChoice(AssistantMessage(text), text, "stop", [])], 0))
        return results

    def loglikelihood(self, requests):
        return [Loglikelihood(self.loglikelihoods.get(c, -5.0) * 2, False, 2) for c, _ in requests]


@pytest.fixture(scope="session")
def tiny_backend(tiny):
    return ModelBackend(tiny)


@pytest.fixture
def scripted(tiny_backend):
    def make(replies=(), loglikelihoods=None):
        return ScriptedBackend(tiny_backend, replies, loglikelihoods)

    return make
