"""RL rewards from verifiers found by name through `llmkit_register_verifiers`, weighted and summed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmkit.core.errors import PluginError
from llmkit.core.verifiers import get_verifier, verifier_names, verify

from ..data.records import Prompt, PromptRecord
from ..errors import ConfigError


def prompt_text(prompt: Prompt) -> str:
    """What a verifier sees as the prompt: raw text as is, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") or "" for m in prompt if m.get("role") == "user"]
    return users[-1] if users else prompt[-1].get("content") or ""


class VerifierRewards:
    """reward = sum_i weight_i * score_i over the record's verifiers (or the config's default set)."""

    def __init__(self, default_weights: Mapping[str, float], workers: int = 4):
        self.default_weights = dict(default_weights)
        self.workers = workers

    def check(self, records: Sequence[PromptRecord]) -> list[str]:
        """Every verifier the records and the config name; an unknown one is a ConfigError listing the installed."""
        names = set(self.default_weights)
        for record in records:
            if record.verifiers is None and not self.default_weights:
                raise ConfigError(
                    "a prompt record names no verifier and the config sets none (verifiers: {name: weight}); "
                    f"installed verifiers: {', '.join(verifier_names()) or 'none'}"
                )
            names.update(record.verifiers or {})
        for name in sorted(names):
            try:
                get_verifier(name)
            except PluginError as err:
                raise ConfigError(str(err)) from None
        return sorted(names)

    def weights(self, record: PromptRecord) -> dict[str, float]:
        return dict(record.verifiers) if record.verifiers is not None else self.default_weights

    def _one(self, job: tuple[PromptRecord, str]) -> tuple[float, dict[str, float]]:
        record, completion = job
        scores = {}
        for name in self.weights(record):
            try:
                result = verify(name, prompt_text(record.prompt), completion, record.reference)
            except PluginError:
                raise
            except Exception as err:
                raise PluginError(f"verifier {name!r} failed: {type(err).__name__}: {err}") from err
            scores[name] = result.score
        total = sum(self.weights(record)[name] * score for name, score in scores.items())
        return total, scores

    def score(self, jobs: Sequence[tuple[PromptRecord, str]]) -> list[tuple[float, dict[str, Any]]]:
        """(reward, per-verifier scores) for each (record, completion text), verifiers run in threads."""
        with ThreadPoolExecutor(max(1, min(self.workers, len(jobs)))) as pool:
            return list(pool.map(self._one, jobs))
