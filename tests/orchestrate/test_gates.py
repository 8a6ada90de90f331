"""Approval gates: allowed / requires approval / forbidden per agent, an approval callback, default deny."""

from __future__ import annotations

import io

import pytest

from llmkit.orchestrate import (
    OrchestrateError,
    ReActAgent,
    ToolPolicy,
    approve_all,
    calculator,
    cli_approver,
    tool,
)
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call

deleted: list[str] = []


@tool(permission="requires_approval")
def delete_file(path: str) -> str:
    """Delete a file."""
    deleted.append(path)
    return f"deleted {path}"


@pytest.fixture(autouse=True)
def _clear():
    deleted.clear()


def run(policy=None, approver=None, tools=(calculator, delete_file)):
    backend = ScriptedBackend([hermes_call("delete_file", {"path": "a.txt"}), "done"])
    options = {"approver": approver} if approver else {}
    return ReActAgent(backend, list(tools), policy=policy, **options).run("delete a.txt")


def test_requires_approval_is_refused_without_an_approver():
    result = run()
    assert deleted == [] and result.tool_log[0]["status"] == "refused"
    assert "needs approval and it was not given" in result.tool_log[0]["content"]


def test_the_approver_is_asked_with_the_validated_arguments():
    asked = []

    def approver(request):
        asked.append(request)
        return True

    result = run(approver=approver)
    assert deleted == ["a.txt"] and result.tool_log[0]["content"] == "deleted a.txt"
    assert [(r.agent, r.tool, dict(r.arguments), r.step) for r in asked] == [
        ("agent", "delete_file", {"path": "a.txt"}, 1)
    ]


def test_forbidden_stays_forbidden_even_with_approve_all():
    result = run(ToolPolicy(allowed={"calculator"}, forbidden={"delete_file"}), approve_all)
    assert deleted == [] and "refused: delete_file is forbidden for agent" in result.tool_log[0]["content"]


def test_a_tool_the_policy_does_not_name_is_denied():
    result = run(ToolPolicy(allowed={"calculator"}), approve_all)
    assert deleted == [] and result.tool_log[0]["status"] == "refused"


def test_an_allowed_override_runs_without_asking():
    result = run(ToolPolicy.from_tools([calculator, delete_file], {"delete_file": "allowed"}))
    assert deleted == ["a.txt"] and result.ok


def test_a_failing_approver_is_a_refusal():
    def broken(request):
        raise RuntimeError("approval service down")

    result = run(approver=broken)
    assert deleted == [] and "the approval check failed (RuntimeError)" in result.tool_log[0]["content"]


def test_forbidden_tools_are_refused_before_their_arguments_are_read():
    backend = ScriptedBackend([hermes_call("delete_file", {"wrong": 1}), "done"])
    result = ReActAgent(backend, [delete_file], policy=ToolPolicy(forbidden={"delete_file"})).run("x")
    assert result.tool_log[0]["status"] == "refused"


def test_policies_with_two_permissions_for_a_tool_are_refused():
    with pytest.raises(OrchestrateError, match="two permissions"):
        ToolPolicy(allowed={"x"}, forbidden={"x"})
    with pytest.raises(OrchestrateError, match="permission of 'x'"):
        ToolPolicy.from_tools([], {"x": "sometimes"})


@pytest.mark.parametrize(
    ("typed", "expected"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False), ("", False)]
)
def test_cli_approver(typed, expected):
    out = io.StringIO()
    approve = cli_approver(io.StringIO(typed), out)
    result = run(approver=approve)
    assert (deleted == ["a.txt"]) is expected and "agent wants to run delete_file" in out.getvalue()
    assert result.tool_log[0]["status"] == ("ok" if expected else "refused")
