"""`code_tests`: the reply's Python code must pass the reference's unit tests, run in core's sandbox.

The reference is test code (a string of asserts), a list of test snippets (partial credit: the score is
the fraction passed), or a mapping {"tests": [...], "setup": "...", "timeout_s": 10, "memory_mb": 512}.
The code is the last ```python fenced block of the reply (or the whole reply when it has none).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from llmkit.core.errors import InvalidParameterError
from llmkit.core.sandbox import SandboxLimits, run_python
from llmkit.core.verifiers import VerifierResult

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)

# The harness reads its marker from stdin before the solution runs, executes the solution, then each
# test in the solution's namespace, and prints one marked JSON line. Best effort: code that inspects
# the harness can forge that line (see docs/train.md).
_HARNESS = """
import json, sys
def _run(marker):
    namespace = {"__name__": "__main__"}
    setup, solution, tests = (open(name).read() for name in ("setup.py", "solution.py", "tests.json"))
    try:
        exec(compile(setup + "\\n" + solution, "solution.py", "exec"), namespace)
    except BaseException as err:
        print(marker + json.dumps({"error": type(err).__name__ + ": " + str(err)[:300]}), flush=True)
        return
    results = []
    for test in json.loads(tests):
        try:
            exec(compile(test, "test.py", "exec"), namespace)
            results.append(True)
        except BaseException:
            results.append(False)
    print(marker + json.dumps({"results": results}), flush=True)
_run(sys.stdin.readline().strip())
"""


def extract_code(completion: str) -> str:
    """The last fenced Python block, or the whole reply."""
    blocks = _FENCE.findall(completion)
    return blocks[-1] if blocks else completion


def _tests_and_limits(reference: Any) -> tuple[list[str], str, SandboxLimits]:
    setup, timeout_s, memory_mb = "", 10.0, 512
    if isinstance(reference, Mapping):
        tests = reference.get("tests")
        setup = str(reference.get("setup", ""))
        timeout_s = float(reference.get("timeout_s", timeout_s))
        memory_mb = int(reference.get("memory_mb", memory_mb))
    else:
        tests = reference
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise InvalidParameterError("code_tests: the reference must be test code, a list of tests or {'tests': [...]}")
    return tests, setup, SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb)


def code_tests_verifier(prompt: str, completion: str, reference: Any) -> VerifierResult:
    """Score = fraction of the tests that pass; passed = all of them pass (within time and memory limits)."""
    tests, setup, limits = _tests_and_limits(reference)
    marker = f"@@llmkit-{secrets.token_hex(8)}@@"
    files = {"setup.py": setup, "solution.py": extract_code(completion), "tests.json": json.dumps(tests)}
    outcome = run_python(_HARNESS, stdin=marker + "\n", files=files, limits=limits)
    line = next((ln for ln in reversed(outcome.stdout.splitlines()) if ln.startswith(marker)), None)
    if outcome.status != "ok" or line is None:
        detail = f"sandbox status {outcome.status}" + (f": {outcome.stderr.strip()[-300:]}" if outcome.stderr else "")
        return VerifierResult(False, 0.0, detail, {"status": outcome.status})
    report = json.loads(line[len(marker) :])
    if "error" in report:
        return VerifierResult(False, 0.0, f"the code does not run: {report['error']}", {"status": "error"})
    results = report["results"]
    passed = sum(results)
    return VerifierResult(
        passed == len(results), passed / len(results), f"{passed}/{len(results)} tests pass", {"results": results}
    )
