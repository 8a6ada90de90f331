"""Prompt formats: zero- or few-shot, raw text or chat messages, with or without chain of thought."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .data import Sample
from .errors import EvalError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compile(source: str):
    try:
        return _ENV.from_string(source)
    except TemplateError as err:
        raise EvalError(f"bad prompt template {source[:60]!r}: {err}") from None


def render_template(source: str, sample: Sample, **extra: Any) -> str:
    """Render a Jinja template over a sample's fields (plus `id`, `choices`, `target`, `target_text`)."""
    variables = {**sample.fields, "id": sample.id, "choices": list(sample.choices), "target": sample.target}
    variables["target_text"] = target_text(sample)
    variables.update(extra)
    try:
        return _compile(source).render(**variables)
    except TemplateError as err:
        raise EvalError(f"prompt template failed on sample {sample.id}: {err}") from None


def target_text(sample: Sample) -> str:
    """The gold answer as text: the right choice for multiple choice, else the target itself."""
    if sample.choices and isinstance(sample.target, int) and 0 <= sample.target < len(sample.choices):
        return sample.choices[sample.target]
    return "" if sample.target is None else str(sample.target)


@dataclasses.dataclass(frozen=True)
class PromptFormat:
    """How a sample becomes a prompt (lm-evaluation-harness layout: description, shots, query)."""

    template: str = "{{ question }}"
    answer: str = "{{ target_text }}"  # how a few-shot example's answer is written
    description: str = ""
    fewshot: int = 0
    fewshot_separator: str = "\n\n"
    target_delimiter: str = " "
    chat: bool = False
    system: str | None = None
    chain_of_thought: str | None = None  # appended to the query when set, e.g. "Let's think step by step."
    fewshot_seed: int = 1234
    # "random" (seeded per sample), "first" (the pool's first k, in order), or a registered few-shot selector
    # (llmkit-context: "bm25", "dense") with its `fewshot_options` (mmr_lambda, balance_labels, order)
    fewshot_sampler: str = "random"
    fewshot_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    assistant_prefix: str | None = None  # chat only: the reply's first words, written for the model to continue

    def examples(self, sample: Sample, pool: Sequence[Sample]) -> list[Sample]:
        """`fewshot` examples for `sample`, drawn from `pool` without the sample itself, reproducibly."""
        if self.fewshot == 0:
            return []
        candidates = [s for s in pool if s.id != sample.id]
        if len(candidates) < self.fewshot:
            raise EvalError(f"{self.fewshot}-shot prompts need {self.fewshot} examples; the pool has {len(candidates)}")
        if self.fewshot_sampler == "first":
            return candidates[: self.fewshot]
        if self.fewshot_sampler == "random":
            return random.Random(f"{self.fewshot_seed}:{sample.id}").sample(candidates, self.fewshot)
        from .fewshot_selection import select_examples

        texts = [render_template(self.template, ex) for ex in candidates]
        labels = [target_text(ex) for ex in candidates]
        query = render_template(self.template, sample)
        return select_examples(
            self.fewshot_sampler,
            self.fewshot_options,
            query,
            candidates,
            texts,
            labels,
            self.fewshot,
            self.fewshot_seed,
        )

    def query(self, sample: Sample) -> str:
        text = render_template(self.template, sample)
        return f"{text} {self.chain_of_thought}" if self.chain_of_thought else text

    def raw(self, sample: Sample, pool: Sequence[Sample] = ()) -> str:
        """The whole prompt as one string."""
        shots = "".join(
            render_template(self.template, ex) + self.target_delimiter + render_template(self.answer, ex)
            + self.fewshot_separator
            for ex in self.examples(sample, pool)
        )  # fmt: skip
        description = render_template(self.description, sample) if self.description else ""
        system = f"{self.system}\n\n" if self.system else ""
        return system + description + shots + self.query(sample)

    def build(self, sample: Sample, pool: Sequence[Sample], render_chat) -> str | list[dict[str, str]]:
        """What the solver sends: raw text, chat messages, or chat text plus the assistant's prefix."""
        if not self.chat:
            return self.raw(sample, pool)
        messages = self.messages(sample, pool)
        if self.assistant_prefix is None:
            return messages
        return render_chat(messages) + render_template(self.assistant_prefix, sample)

    def messages(self, sample: Sample, pool: Sequence[Sample] = ()) -> list[dict[str, str]]:
        """The prompt as chat messages: few-shot examples become user/assistant turns."""
        system = "\n\n".join(
            part
            for part in (self.system, render_template(self.description, sample) if self.description else "")
            if part
        )
        messages = [{"role": "system", "content": system.strip()}] if system.strip() else []
        for ex in self.examples(sample, pool):
            messages.append({"role": "user", "content": render_template(self.template, ex)})
            messages.append({"role": "assistant", "content": render_template(self.answer, ex)})
        messages.append({"role": "user", "content": self.query(sample)})
        return messages
