"""Scorers: a sample and the solver's response in, per-sample metric values (and what was extracted) out."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llmkit.core.scaling import majority_vote
from llmkit.core.verifiers import verify

from ..data import Sample
from ..errors import EvalError
from ..prompting import target_text
from ..solvers.base import stable_seed
from .extraction import extractor, normalizer

Scored = dict[str, Any]  # {"metrics": {name: float}, "detail": {...}}


class Scorer(abc.ABC):
    """Base: `score` one sample; `score_batch` may run them in parallel (code execution does)."""

    @abc.abstractmethod
    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored: ...

    def score_batch(self, samples: Sequence[Sample], responses: Sequence[Mapping[str, Any]]) -> list[Scored]:
        return [self.score(s, r) for s, r in zip(samples, responses, strict=True)]


def _argmax_first(values: np.ndarray) -> int:
    return int(np.argmax(values))  # numpy picks the first maximum, as lm-evaluation-harness does


@dataclasses.dataclass(frozen=True)
class ChoiceScorer(Scorer):
    """`acc` = argmax of log-likelihoods; `acc_norm` = argmax of log-likelihood per character of the choice."""

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        lls = np.asarray(response["loglikelihoods"], dtype=np.float64)
        lengths = np.asarray([float(len(c)) for c in sample.choices])
        pred, pred_norm = _argmax_first(lls), _argmax_first(lls / lengths)
        return {
            "metrics": {"acc": float(pred == sample.target), "acc_norm": float(pred_norm == sample.target)},
            "detail": {"pred": pred, "pred_norm": pred_norm, "target": sample.target},
        }


def _answer(sample: Sample, field: str | None) -> str:
    return str(sample.fields[field]) if field else target_text(sample)


@dataclasses.dataclass(frozen=True)
class MatchScorer(Scorer):
    """Extract an answer from each completion, normalize it and compare with the target; `acc` averages samples."""

    extract: str = "strip"
    normalize: str = "text"
    metric: str = "exact_match"

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        pull, clean = extractor(self.extract), normalizer(self.normalize)
        gold = clean(target_text(sample))
        answers, hits = [], []
        for text in response["completions"]:
            raw = pull(text)
            answer = clean(raw) if raw is not None else None
            answers.append(answer)
            hits.append(float(answer is not None and answer == gold))
        return {"metrics": {self.metric: float(np.mean(hits))}, "detail": {"answers": answers, "gold": gold}}


@dataclasses.dataclass(frozen=True)
class VerifierScorer(Scorer):
    """Any verifier registered through `llmkit_register_verifiers`: pass rate and mean score over completions."""

    name: str
    prompt_field: str | None = None

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        prompt = str(sample.fields.get(self.prompt_field, "")) if self.prompt_field else ""
        results = [verify(self.name, prompt, text, sample.target) for text in response["completions"]]
        return {
            "metrics": {
                "pass": float(np.mean([r.passed for r in results])),
                "score": float(np.mean([r.score for r in results])),
            },
            "detail": {"verdicts": [r.detail for r in results]},
        }


def subset_majority_accuracy(answers: Sequence[str | None], gold: str | None, k: int, draws: int, seed: int) -> float:
    """Expected correctness of the majority vote over k answers drawn without replacement (ties: first drawn)."""
    rng = np.random.default_rng(seed)
    n = len(answers)
    if k >= n:
        return float(majority_vote(answers) == gold and gold is not None)
    hits = [majority_vote([answers[i] for i in rng.permutation(n)[:k]]) == gold for _ in range(draws)]
    return float(np.mean(hits)) if gold is not None else 0.0


@dataclasses.dataclass(frozen=True)
class SelfConsistencyScorer(Scorer):
    """`acc` of the majority vote of all N answers, `acc@k` for the accuracy-vs-N curve, `acc_single` per sample."""

    normalize: str = "number"
    curve: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    draws: int = 32

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        if "answers" not in response:
            raise EvalError("the self-consistency scorer needs the self_consistency solver")
        answers, gold = response["answers"], normalizer(self.normalize)(target_text(sample))
        metrics = {
            "acc": float(response["majority"] == gold),
            "acc_single": float(np.mean([a == gold for a in answers])),
        }
        for k in self.curve:
            if k <= len(answers):
                metrics[f"acc@{k}"] = subset_majority_accuracy(
                    answers, gold, k, self.draws, seed=stable_seed(0, sample.id)
                )
        return {"metrics": metrics, "detail": {"majority": response["majority"], "gold": gold}}


@dataclasses.dataclass(frozen=True)
class CombinedScorer(Scorer):
    """Several scorers on the same response; their metrics merged (names must not clash)."""

    scorers: tuple[Scorer, ...]

    def score_batch(self, samples: Sequence[Sample], responses: Sequence[Mapping[str, Any]]) -> list[Scored]:
        merged: list[Scored] = [{"metrics": {}, "detail": {}} for _ in samples]
        for scorer in self.scorers:
            for out, scored in zip(merged, scorer.score_batch(samples, responses), strict=True):
                out["metrics"].update(scored["metrics"])
                out["detail"][type(scorer).__name__ + ":" + ",".join(scored["metrics"])] = scored["detail"]
        return merged

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        return self.score_batch([sample], [response])[0]
