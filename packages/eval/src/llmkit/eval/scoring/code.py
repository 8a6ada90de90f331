"""Functional correctness: run completions against their tests in core's sandbox; pass@k per problem.

The tests run in a process the completion cannot reach (`llmkit.core.sandbox.run_code_tests`), so
patching builtins, exiting early or returning always-equal objects does not pass them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmkit.core.sandbox import CodeTestsOutcome, SandboxLimits, run_code_tests
from llmkit.core.verifiers import VerifierResult

from ..data import Sample
from .passk import pass_at_k
from .scorers import Scored, Scorer


def run_humaneval(problem: Mapping[str, Any], completion: str, limits: SandboxLimits) -> CodeTestsOutcome:
    """HumanEval's check: the solution is prompt + completion; the test is the problem's tests + `check(entry_point)`."""
    test = f"{problem['test']}\ncheck({problem['entry_point']})\n"
    return run_code_tests(f"{problem['prompt']}{completion}", [test], limits=limits)


def outcome_status(outcome: CodeTestsOutcome) -> str:
    """ok when every test passed, else why not: the sandbox's timeout/memory_limit/output_limit, or error."""
    if outcome.passed:
        return "ok"
    if outcome.status != "ok":
        return outcome.status
    return "memory_limit" if "MemoryError" in outcome.failures else "error"


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
            (index, sample.fields, completion)
            for index, (sample, response) in enumerate(zip(samples, responses, strict=True))
            for completion in response["completions"]
        ]
        with ThreadPoolExecutor(self.workers) as pool:
            outcomes = list(pool.map(lambda job: run_humaneval(job[1], job[2], limits), jobs))
        statuses: list[list[str]] = [[] for _ in samples]
        for (index, _, _), outcome in zip(jobs, outcomes, strict=True):
            statuses[index].append(outcome_status(outcome))
        scored = []
        for status in statuses:
            n, c = len(status), status.count("ok")
            metrics = {f"pass@{k}": pass_at_k(n, c, k) for k in self.k if k <= n}
            scored.append({"metrics": metrics, "detail": {"n": n, "correct": c, "statuses": status}})
        return scored

    def score(self, sample: Sample, response: Mapping[str, Any]) -> Scored:
        return self.score_batch([sample], [response])[0]


def python_tests_verifier(prompt: str, completion: str, reference: str) -> VerifierResult:
    """Verifier `python_tests`: prompt + completion is the solution, reference the test code (raises on failure)."""
    outcome = run_code_tests(f"{prompt}{completion}", [reference], limits=SandboxLimits(timeout_s=10))
    status = outcome_status(outcome)
    return VerifierResult.from_bool(outcome.passed, status, tests=outcome.detail, stderr=outcome.sandbox.stderr[-2000:])
