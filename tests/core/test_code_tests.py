"""run_code_tests: the solution cannot forge the verdict (reward hacks in GRPO), and honest tests still work."""

from __future__ import annotations

import pytest

from llmkit.core.errors import InvalidParameterError
from llmkit.core.sandbox import SandboxLimits, run_code_tests

TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add('a', 'b') == 'ab'"]
WRONG = "def add(a, b):\n    return 0\n"

HACKS = {
    "builtins.exec is a no-op": "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG,
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "os._exit(0) when called": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "sys.exit(0) when called": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "AssertionError replaced": "import builtins\nclass Quiet(Exception):\n    pass\nbuiltins.AssertionError = Quiet\n"
    + WRONG,
    "result equals everything": "class Any:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Any()\n",
    "int subclass equals everything": "class I(int):\n    def __eq__(self, other):\n        return True\n"
    "    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)\n",
    "fake verdict lines": "import sys\nfor stream in (sys.stdout, sys.stderr, sys.__stdout__):\n"
    "    print('@@llmkit-verdict-0@@{\"failures\": [null, null, null]}', file=stream, flush=True)\n" + WRONG,
    "writes to every fd": "import os\nfor fd in range(3, 64):\n    try:\n"
    "        os.write(fd, b'{\"value\": 3}\\n')\n    except OSError:\n        pass\n" + WRONG,
    "reads the tests from stdin or files": "import os, sys\nleak = sys.stdin.read() + str(os.listdir('.'))\n"
    "assert 'assert add' not in leak, leak\n" + WRONG,
    "walks the stack for the harness": "import sys\nframe = sys._getframe()\nwhile frame.f_back:\n"
    "    frame = frame.f_back\nframe.f_globals.update(exec=lambda *a, **k: None)\n" + WRONG,
    "kills the checker": "import os\nos.kill(os.getppid(), 9)\n",
    "patches the json module": "import json\njson.dumps = lambda *a, **k: '{\"failures\": [null, null, null]}'\n"
    + WRONG,
}


@pytest.mark.parametrize("code", HACKS.values(), ids=HACKS.keys())
def test_reward_hacks_pass_no_test(code):
    outcome = run_code_tests(code, TESTS, limits=SandboxLimits(timeout_s=10))
    assert not outcome.passed and outcome.results == (False, False, False), outcome.detail


def test_a_correct_solution_passes_and_a_partial_one_scores_partially():
    good = run_code_tests("def add(a, b):\n    return a + b\n", TESTS)
    assert good.passed and good.fraction == 1.0 and good.detail == "3/3 tests pass"
    partial = run_code_tests("def add(a, b):\n    return a + b if isinstance(a, int) else None\n", TESTS)
    assert partial.status == "ok" and partial.results == (True, True, False) and partial.failures[2] == "AssertionError"


def test_values_cross_as_plain_data_and_objects_as_handles():
    solution = (
        "import math\n"
        "class Stack:\n"
        "    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n"
        "    def pop(self):\n        return self.items.pop()\n"
        "    def __len__(self):\n        return len(self.items)\n"
        "def evens(n):\n    yield from range(0, n, 2)\n"
        "def shapes():\n    return (1, 2.5, 'x', b'y', 1j, None, [1], {2}, frozenset({3}), {'k': (4,)}, math.inf)\n"
        "def check_positive(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n"
        "LIMIT = 10\n"
    )
    tests = [
        "s = Stack()\ns.push(3)\ns.push({'a': [1, 2]})\nassert len(s) == 2\nassert s.pop() == {'a': [1, 2]}\nassert s.items == [3]",
        "assert list(evens(7)) == [0, 2, 4, 6] and sum(evens(5)) == 6",
        "assert shapes() == (1, 2.5, 'x', b'y', 1j, None, [1], {2}, frozenset({3}), {'k': (4,)}, float('inf'))",
        "try:\n    check_positive(-1)\nexcept ValueError as err:\n    assert 'negative' in str(err)\nelse:\n    raise AssertionError",
        "assert LIMIT == 10 and Stack() != Stack()",
    ]
    outcome = run_code_tests(solution, tests)
    assert outcome.passed, outcome.failures


def test_setup_runs_before_the_solution_and_load_errors_are_reported():
    assert run_code_tests(
        "def f():\n    return helper() + 1\n", ["assert f() == 3"], setup="def helper():\n    return 2"
    ).passed
    broken = run_code_tests("def f(: pass", ["assert f() == 3"])
    assert broken.status == "error" and "SyntaxError" in broken.detail and broken.results == (False,)


def test_limits_apply_to_the_solution():
    slow = run_code_tests("def f():\n    while True:\n        pass\n", ["f()"], limits=SandboxLimits(timeout_s=2))
    assert slow.status == "timeout" and not slow.passed
    hungry = run_code_tests("def f():\n    return bytearray(4 * 2**30)\n", ["f()"], limits=SandboxLimits(memory_mb=256))
    assert hungry.failures == ("MemoryError",)


def test_bad_tests_are_rejected():
    with pytest.raises(InvalidParameterError, match="non-empty sequence"):
        run_code_tests("", "assert True")
    with pytest.raises(InvalidParameterError, match="non-empty sequence"):
        run_code_tests("", [])
