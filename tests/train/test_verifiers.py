"""Built-in verifiers: registration, numeric final answers, normalized match, code in the sandbox."""

from __future__ import annotations

import pytest

from llmkit.core.plugins import registry
from llmkit.core.verifiers import verify
from llmkit.train.data.records import PromptRecord
from llmkit.train.errors import ConfigError
from llmkit.train.verifiers import VerifierRewards, extract_code, parse_number

BUILTIN = ("math_answer", "answer_match", "code_tests")


def test_registered_through_the_entry_point():
    verifiers = registry("verifiers")
    for name in BUILTIN:
        assert verifiers.owner(name).startswith("llmkit-train")


@pytest.mark.parametrize(
    "completion, reference, passed",
    [
        ("so the total is 18.\n#### 18", "18", True),
        ("Thus \\boxed{18} apples.", 18, True),
        ("#### 1,234", "1234", True),
        ("\\boxed{\\frac{3}{4}}", "0.75", True),
        ("\\boxed{\\dfrac{1}{2}}", "1/2", True),
        ("#### $12.50", "12.5", True),
        ("\\boxed{50\\%}", "0.5", True),
        ("\\boxed{x^2 + 1}", "x^2+1", True),
        ("first \\boxed{3} then \\boxed{4}", "4", True),
        ("#### 17", "18", False),
        ("the answer is 18", "18", False),  # no marked answer: strict on purpose
        ("\\boxed{18", "18", False),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "Natalia ... #### 72", True),  # GSM8K-style reference
    ],
)
def test_math_answer(completion, reference, passed):
    assert verify("math_answer", "q", completion, reference).passed is passed


def test_parse_number():
    assert parse_number("-3/4") == parse_number("-0.75")
    assert parse_number("abc") is None and parse_number("1/0") is None


@pytest.mark.parametrize(
    "completion, reference, passed",
    [
        ("The answer is Paris.", "paris", True),
        ("Answer: the Eiffel Tower", "Eiffel tower", True),
        ("\\boxed{Blue}", ["red", "blue"], True),
        ("  Paris!  ", "Paris", True),
        ("I think it is Lyon", "Paris", False),
    ],
)
def test_answer_match(completion, reference, passed):
    assert verify("answer_match", "q", completion, reference).passed is passed


def test_code_tests_pass_partial_and_fail():
    completion = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert extract_code(completion).strip().startswith("def add")
    full = verify("code_tests", "", completion, "assert add(1, 2) == 3\nassert add(-1, 1) == 0")
    assert full.passed and full.score == 1.0
    partial = verify("code_tests", "", completion, ["assert add(1, 2) == 3", "assert add(1, 2) == 4"])
    assert not partial.passed and partial.score == 0.5 and partial.metadata["results"] == [True, False]
    broken = verify("code_tests", "", "def add(a, b) return", "assert add(1, 2) == 3")
    assert not broken.passed and "SyntaxError" in broken.detail


def test_code_tests_limits():
    slow = verify("code_tests", "", "while True:\n    pass", {"tests": ["assert True"], "timeout_s": 1})
    assert not slow.passed and slow.metadata["status"] == "timeout"
    hungry = "blob = bytearray(2 * 1024 ** 3)"
    big = verify("code_tests", "", hungry, {"tests": ["assert True"], "memory_mb": 256, "timeout_s": 10})
    assert not big.passed and big.score == 0.0


def test_exit_zero_does_not_pass():
    result = verify("code_tests", "", "import sys\nsys.exit(0)", "assert False")
    assert not result.passed


def test_weighted_rewards_and_unknown_names():
    rewards = VerifierRewards({"math_answer": 1.0, "answer_match": 0.5})
    record = PromptRecord("What is 2+2?", "4")
    [(total, scores)] = rewards.score([(record, "\\boxed{4}")])
    assert scores == {"math_answer": 1.0, "answer_match": 1.0} and total == 1.5
    own = PromptRecord("q", "4", {"answer_match": 2.0})
    assert rewards.score([(own, "The answer is 4")])[0][0] == 2.0
    with pytest.raises(ConfigError, match="installed"):
        VerifierRewards({"no_such_verifier": 1.0}).check([record])
    with pytest.raises(ConfigError, match="names no verifier"):
        VerifierRewards({}).check([record])


@pytest.mark.parametrize(
    "hack",
    [
        "import builtins\nbuiltins.exec = lambda *a, **k: None\n",  # the tests' exec becomes a no-op
        "import os\nos._exit(0)\n",
        "class Any:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Any()\n",
    ],
)
def test_code_tests_cannot_be_reward_hacked(hack):
    result = verify("code_tests", "", f"```python\n{hack}```", ["assert add(1, 2) == 3", "assert add(2, 2) == 4"])
    assert not result.passed and result.score == 0.0
