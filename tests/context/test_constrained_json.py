"""Structured replies through the backend's grammar-constrained decoding where it has it, prompted JSON (said
out loud) where it does not: the tiny random model writes a valid summary only under the grammar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmkit.context import (
    ConstrainedJSON,
    ContextError,
    PromptedJSON,
    PromptedJSONFallback,
    StructuredOutputError,
    Summarizer,
    TurnSummary,
    json_generator,
)
from llmkit.context.items import ContextItem
from llmkit.core import load_pretrained
from llmkit.core.backends import ModelBackend
from llmkit.core.generate import Completion, GenerationOutput
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import compile_structured, create_matcher, vocabulary_index, words_for
from llmkit.core.testing import write_tiny_model

TURNS = [
    ContextItem(role="user", content="I am allergic to peanuts, so never suggest anything with peanuts.", turn=1),
    ContextItem(role="assistant", content="Understood, no peanuts.", turn=2),
    ContextItem(role="user", content="Suggest a curry for tonight.", turn=3),
]


class GrammarBackend(ModelBackend):
    """Core's reference backend plus grammar-constrained greedy decoding with core's matcher (the engine's
    mask, budget restriction included, without its scheduler); records every `structured` it was given."""

    name = "grammar-test"
    supports_structured = True

    def __init__(self, pretrained):
        super().__init__(pretrained)
        self.specs = []
        self.conversations = []

    def chat(self, conversations, params, tools=None, structured=None):
        self.conversations.extend([dict(m) for m in c] for c in conversations)
        return super().chat(conversations, params, tools=tools, structured=structured)

    @torch.inference_mode()
    def generate(self, prompts, params, structured=None):
        if structured is None:
            return super().generate(prompts, params)
        self.specs.append(structured)
        grammar = compile_structured(structured)
        vocabulary = vocabulary_index(self.tokenizer, self.pretrained.config.vocab_size)
        model = self.pretrained.model
        outputs = []
        for prompt in prompts:
            prompt_ids = list(prompt) if not isinstance(prompt, str) else self.tokenizer.encode(prompt)
            ids, matcher = list(prompt_ids), create_matcher(grammar, vocabulary)
            bitmask = torch.zeros((1, words_for(vocabulary.vocab_size)), dtype=torch.int32)
            finish = "length"
            for step in range(params.max_tokens):
                matcher.fill_next_token_bitmask(bitmask, 0)
                matcher.restrict_to_budget(bitmask, 0, params.max_tokens - step)
                hidden = model(torch.tensor(ids), torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
                logits = model.compute_logits(hidden[-1:])[0, : vocabulary.vocab_size]
                bits = np.unpackbits(bitmask[0].numpy().view(np.uint8), bitorder="little")
                allowed = torch.from_numpy(bits[: vocabulary.vocab_size].astype(bool))
                token = int(logits.masked_fill(~allowed, float("-inf")).argmax())
                assert matcher.accept_token(token)
                if token in vocabulary.stop_token_ids:
                    finish = "stop"
                    break
                ids.append(token)
            completion_ids = ids[len(prompt_ids) :]
            text = self.tokenizer.decode(completion_ids)
            outputs.append(GenerationOutput(prompt_ids, [Completion(completion_ids, text, finish)]))
        return outputs


def _greedy(max_tokens):
    return SamplingParams(temperature=0.0, max_tokens=max_tokens)


@pytest.fixture(scope="module")
def grammar_backend(tmp_path_factory):
    # The tiny model with room for the schema instruction (its default 256 positions are too few).
    directory = write_tiny_model(tmp_path_factory.mktemp("tiny-2k"), max_position_embeddings=2048)
    return GrammarBackend(load_pretrained(directory))


def test_json_generator_constrains_where_the_backend_can(grammar_backend):
    generator = json_generator(grammar_backend)
    assert isinstance(generator, ConstrainedJSON) and generator.method == "constrained"


def test_json_generator_says_when_it_falls_back_to_prompted_json(tiny_backend):
    with pytest.warns(PromptedJSONFallback, match="reference backend cannot constrain decoding"):
        generator = json_generator(tiny_backend)
    assert isinstance(generator, PromptedJSON) and generator.method == "prompted"


def test_constrained_json_refuses_a_backend_without_constraints(tiny_backend):
    with pytest.raises(ContextError, match="cannot constrain decoding"):
        ConstrainedJSON(tiny_backend)


def test_the_tiny_random_model_writes_a_valid_summary_only_under_the_grammar(grammar_backend):
    params_tokens = 160
    prompted = Summarizer(PromptedJSON(grammar_backend, max_attempts=1, params=_greedy(params_tokens)))
    with pytest.raises(StructuredOutputError):
        prompted.summarize(None, 0, TURNS, constraints=["never suggest anything with peanuts"])

    generator = json_generator(grammar_backend, max_attempts=1, params=_greedy(params_tokens))
    summary = Summarizer(generator).summarize(None, 0, TURNS, constraints=["never suggest anything with peanuts"])
    assert isinstance(summary, TurnSummary)
    assert "never suggest anything with peanuts" in summary.constraints  # carried over whatever the model wrote
    assert generator.attempts_used == [1]
    (spec,) = grammar_backend.specs
    assert spec.kind == "json_schema" and spec.source == TurnSummary.model_json_schema()
    # The grammar fixes the shape; the instruction (with the field descriptions) still tells the model what to write.
    assert (
        json.dumps(TurnSummary.model_json_schema(), sort_keys=True) in grammar_backend.conversations[-1][-1]["content"]
    )


def test_a_constrained_reply_that_fails_validation_is_retried_then_fails_loudly(grammar_backend):
    # 20 tokens cannot hold the shortest TurnSummary: the reply is cut, and the error says so.
    generator = ConstrainedJSON(grammar_backend, max_attempts=2, params=_greedy(20))
    with pytest.raises(StructuredOutputError, match=r"no constrained reply .* 2 attempts: .*max_tokens=20"):
        generator.generate([{"role": "user", "content": "summarize"}], TurnSummary)
    assert generator.attempts_used == [3]
