"""Functional correctness: run completions against their tests in core's sandbox; pass@k per problem."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmkit.core.sandbox import SandboxLimits, SandboxResult, run_python
from llmkit.core.verifiers import VerifierResult

from ..data import Sample
from .passk import pass_at_k
from .scorers import Scored, Scorer


def humaneval_program(problem: Mapping[str, Any], completion: str) -> str:
    """HumanEval's check program: prompt + completion, the tests, then `check(entry_point)`."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def run_tests(program: str, limits: SandboxLimits) -> SandboxResult:
    return run_python(program, limits=limits)


@dataclasses.dataclass(frozen=True)
class CodeScorer(Scorer):
    """Runs every completion's check program in the sandbox; metrics `pass@k` for each k <= n."""

    k: tuple[int, ...] = (1, 10)
    timeout_s: float = 10.0
    memory_mb: int = 1024
    workers: int = 4

    def score_batch(self, samples: Sequence[Sample], responses: Sequence[Mapping[str, Any]]) -> list[Scored]:
        limits = SandboxLimits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        jobs = [
            (index, humaneval_program(sample.fields, completion))
            for index, (sample, response) in enumerate(zip(samples, responses, strict=True))
            for completion in response["completions"]
        ]
        with ThreadPoolExecutor(self.workers) as pool:
            outcomes = list(pool.map(lambda job: run_tests(job[1], limits), jobs))
        statuses: list[list[str]] = [[] for _ in samples]
        for (index, _), outcome in zip(jobs, outcomes, strict=True):
            statuses[index].append(outcome.status)
        scored = []
        for status in statuses:
            n, c = len(status), status.count("ok")
            metrics = {f"pass@{k}": pass_at_k(n, c, k) for k in self.k if k <= n}
            scored.append({"metrics": metrics, "detail": {"n": n, "correct": c, "statuses": status}})
        return scored

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        return self.score_batch([sample], [response])[0]


def python_tests_verifier(prompt: str, completion: str, reference: str) -> VerifierResult:
    """Verifier `python_tests`: prompt + completion + reference (test code that raises on failure) in the sandbox."""
    result = run_python(f"{prompt}{completion}\n{reference}\n", limits=SandboxLimits(timeout_s=10))
    return VerifierResult.from_bool(result.ok, result.status, stderr=result.stderr[-2000:])
