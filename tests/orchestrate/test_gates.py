"""Approval gates: allowed / requires approval / forbidden per agent, an approval callback, default deny."""

from __future__ import annotations

import io

import pytest

from llmkit.orchestrate import (
    ApprovalRequest,
    ApprovalUnavailable,
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
    assert result.tool_log[0]["content"] == "refused: delete_file needs approval and nobody can give it: this agent has no approver"  # fmt: skip


def test_the_approver_is_asked_with_the_arguments_that_will_run_not_the_raw_ones():
    ran, asked = [], []

    @tool(permission="requires_approval")
    def repeat(word: str, times: int) -> str:
        """Repeat a word."""
        ran.append(times)
        return word * times

    def approver(request):
        asked.append(dict(request.arguments))
        return True

    backend = ScriptedBackend([hermes_call("repeat", {"word": "ab", "times": "3"}), "done"])
    result = ReActAgent(backend, [repeat], approver=approver).run("repeat ab three times")
    assert result.tool_log[0]["content"] == "ababab" and ran == [3]
    assert asked == [{"word": "ab", "times": 3}] and type(asked[0]["times"]) is int  # coerced, as it ran


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


def ask_terminal(arguments, typed, **options):
    out = io.StringIO()
    request = ApprovalRequest("agent", "run_python", arguments, 1)
    try:
        return cli_approver(io.StringIO(typed), out, **options)(request), out.getvalue()
    except ApprovalUnavailable as err:
        return err, out.getvalue()


def test_cli_approver_shows_the_whole_arguments_page_by_page():
    code = "\n".join(f"print({i})  # line {i}" for i in range(100)) + "\nprint('x' * 400) # " + "y" * 400
    approved, shown = ask_terminal({"code": code, "timeout": 2}, "\n\ny\n", page_lines=40)
    assert approved is True
    assert all(f"print({i})  # line {i}" in shown for i in range(100))  # nothing cut
    assert "y" * 100 in shown and shown.count("-- lines 1-") == 2 and "-- lines 1-80 of 10" in shown
    assert "timeout =\n  │ 2" in shown


def test_cli_approver_paging_can_refuse_and_shows_control_characters_escaped():
    code = "print('safe')\r\x1b[2Kimport os; os.system('rm -rf ~')\u202e"
    approved, shown = ask_terminal({"code": code}, "y\n")
    assert approved is True and "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert "print('safe')\\x0d\\x1b[2Kimport os; os.system('rm -rf ~')\\u202e" in shown
    approved, shown = ask_terminal({"code": "x = 1\n" * 100}, "q\n", page_lines=10)
    assert approved is False and "Allow run_python?" not in shown
    assert ask_terminal({"code": "x = 1\n" * 100}, "", page_lines=10)[0] is False  # end of input


def test_cli_approver_refuses_to_ask_about_arguments_too_long_to_read():
    refusal, shown = ask_terminal({"code": "x = 1\n" * 50}, "y\n", max_lines=20)
    assert isinstance(refusal, ApprovalUnavailable) and "52 lines, more than the 20" in str(refusal)
    assert "refused run_python" in shown and "x = 1" not in shown
