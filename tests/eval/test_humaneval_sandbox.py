"""HumanEval in core's sandbox: canonical solutions pass, wrong ones fail, runaway ones are stopped."""

from __future__ import annotations

import pytest

from llmkit.eval.data.builtin import humaneval
from llmkit.eval.scoring.code import CodeScorer


@pytest.fixture(scope="module")
def problems():
    return humaneval().samples


def test_all_164_canonical_solutions_pass(problems):
    assert len(problems) == 164
    scored = CodeScorer(k=(1,), workers=4).score_batch(
        problems, [{"completions": [p.fields["canonical_solution"]]} for p in problems]
    )
    failed = [p.id for p, s in zip(problems, scored, strict=True) if s["metrics"]["pass@1"] != 1.0]
    assert failed == []


def test_wrong_looping_and_allocating_solutions_fail(problems):
    problem = problems[0]  # has_close_elements(numbers, threshold)
    completions = [
        problem.fields["canonical_solution"],
        "    return False\n",  # deliberately wrong
        "    while True:\n        pass\n",  # never returns
        "    x = bytearray(10 * 2**30)\n    return False\n",  # 10 GB
    ]
    scorer = CodeScorer(k=(1, 4), timeout_s=2, memory_mb=512)
    (scored,) = scorer.score_batch([problem], [{"completions": completions}])
    assert scored["detail"]["statuses"] == ["ok", "error", "timeout", "memory_limit"]
    assert scored["metrics"] == {"pass@1": pytest.approx(0.25), "pass@4": 1.0}


def test_a_completion_that_disables_the_tests_does_not_pass(problems):
    problem = problems[0]
    hack = "    return False\nimport builtins\nbuiltins.exec = lambda *a, **k: None\nimport sys\nsys.exit(0)\n"
    (scored,) = CodeScorer(k=(1,)).score_batch([problem], [{"completions": [hack]}])
    assert scored["metrics"]["pass@1"] == 0.0
