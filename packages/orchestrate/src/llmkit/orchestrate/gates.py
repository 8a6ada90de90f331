"""Approval gates: each tool is allowed, requires approval, or forbidden for an agent; default deny."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .approval_prompt import cli_approver
from .errors import ApprovalUnavailable, OrchestrateError
from .tools.tool import PERMISSIONS, Permission, Tool


@dataclasses.dataclass(frozen=True)
class ApprovalRequest:
    """What an approver is asked: may `agent` run `tool` with these arguments (validated and coerced by the
    tool's schema: exactly what will run)?"""

    agent: str
    tool: str
    arguments: Mapping[str, Any]
    step: int


Approver = Callable[[ApprovalRequest], bool]


def deny_all(request: ApprovalRequest) -> bool:
    """The default approver: nobody is there to say yes (a refusal that says so)."""
    raise ApprovalUnavailable("this agent has no approver")


def approve_all(request: ApprovalRequest) -> bool:
    """Say yes to everything (tests, trusted unattended runs); forbidden tools stay forbidden."""
    return True


@dataclasses.dataclass(frozen=True)
class ToolPolicy:
    """Per-agent permissions by tool name. A name in no list is forbidden (default deny)."""

    allowed: frozenset[str] = frozenset()
    requires_approval: frozenset[str] = frozenset()
    forbidden: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("allowed", "requires_approval", "forbidden"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        overlap = (
            (self.allowed & self.requires_approval)
            | (self.allowed & self.forbidden)
            | (self.requires_approval & self.forbidden)
        )
        if overlap:
            raise OrchestrateError(f"tools {sorted(overlap)} are given two permissions")

    @classmethod
    def from_tools(cls, tools: Iterable[Tool], overrides: Mapping[str, Permission] | None = None) -> ToolPolicy:
        """Each tool's own declared permission, with `overrides` (name -> permission) on top."""
        chosen = {t.name: t.permission for t in tools}
        for name, permission in (overrides or {}).items():
            if permission not in PERMISSIONS:
                raise OrchestrateError(f"permission of {name!r} must be one of {PERMISSIONS}, got {permission!r}")
            chosen[name] = permission
        return cls(
            frozenset(n for n, p in chosen.items() if p == "allowed"),
            frozenset(n for n, p in chosen.items() if p == "requires_approval"),
            frozenset(n for n, p in chosen.items() if p == "forbidden"),
        )

    def permission(self, name: str) -> Permission:
        if name in self.allowed:
            return "allowed"
        if name in self.requires_approval:
            return "requires_approval"
        return "forbidden"


@dataclasses.dataclass(frozen=True)
class GateDecision:
    allowed: bool
    permission: Permission
    reason: str


class Gate:
    """Applies one agent's policy; requires-approval tools run only when the approver says yes."""

    def __init__(self, agent: str, policy: ToolPolicy, approver: Approver = deny_all):
        self.agent, self.policy, self.approver = agent, policy, approver

    def before_validation(self, tool: str) -> GateDecision | None:
        """A refusal that needs no arguments (forbidden tools), else None."""
        if self.policy.permission(tool) == "forbidden":
            return GateDecision(False, "forbidden", f"refused: {tool} is forbidden for {self.agent}")
        return None

    def decide(self, tool: str, arguments: Mapping[str, Any], step: int) -> GateDecision:
        """`arguments` are the validated ones, exactly what the tool will be called with."""
        permission = self.policy.permission(tool)
        if permission == "allowed":
            return GateDecision(True, permission, "allowed")
        if permission == "forbidden":
            return GateDecision(False, permission, f"refused: {tool} is forbidden for {self.agent}")
        try:
            approved = bool(self.approver(ApprovalRequest(self.agent, tool, dict(arguments), step)))
        except ApprovalUnavailable as err:
            return GateDecision(False, permission, f"refused: {tool} needs approval and nobody can give it: {err}")
        except Exception as err:  # a failing approver is a refusal, never a crash or an approval
            return GateDecision(False, permission, f"refused: the approval check failed ({type(err).__name__})")
        if approved:
            return GateDecision(True, permission, "approved")
        return GateDecision(False, permission, f"refused: running {tool} needs approval and it was not given")


__all__ = [
    "ApprovalRequest",
    "Approver",
    "Gate",
    "GateDecision",
    "ToolPolicy",
    "approve_all",
    "cli_approver",
    "deny_all",
]
