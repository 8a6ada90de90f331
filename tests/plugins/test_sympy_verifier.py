"""The third-party-style plugin `llmkit-sympy-verifier`, installed from its own pyproject (nox session
`sympy_verifier`); skipped where it is not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("llmkit_sympy_verifier")

from llmkit.core.plugins import registry
from llmkit.core.verifiers import verify


def test_found_through_its_entry_point():
    assert registry("verifiers").owner("math_equivalence").startswith("llmkit-sympy-verifier")
    listed = subprocess.run([sys.executable, "-m", "llmkit.core.cli", "plugins"], capture_output=True, text=True)
    assert listed.returncode == 0 and "math_equivalence" in listed.stdout


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("\\boxed{\\frac{1}{2}}", "0.5"),
        ("\\boxed{2(x+1)}", "2x + 2"),
        ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
        ("#### 3/4", "\\dfrac{3}{4}"),
        ("so \\boxed{x = 7}", "7"),
        ("\\boxed{(x+1)^2}", "x^2 + 2x + 1"),
        ("\\boxed{\\frac{\\pi}{2}}", "\\pi/2"),
        ("\\boxed{1,000}", "1000"),
        ("\\boxed{\\sin^{2}(x) + \\cos^{2}(x)}", "1"),
    ],
)
def test_equivalent_answers_pass(completion, reference):
    result = verify("math_equivalence", "", completion, reference)
    assert result.passed, result.detail


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("\\boxed{\\frac{1}{3}}", "0.33"),
        ("\\boxed{2x + 1}", "2x + 2"),
        ("the answer is 5", "5"),  # no marked final answer
        ("\\boxed{\\unknowncommand{3}}", "3"),
        ("\\boxed{__import__('os')}", "0"),
        ("\\boxed{" + "1+" * 200 + "1}", "201"),
    ],
)
def test_different_or_unreadable_answers_fail(completion, reference):
    assert not verify("math_equivalence", "", completion, reference).passed


def test_model_output_never_runs_as_code(tmp_path):
    marker = tmp_path / "pwned"
    for payload in (f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')", "exec('1')"):
        assert not verify("math_equivalence", "", "\\boxed{" + payload + "}", "0").passed
    assert not marker.exists()
