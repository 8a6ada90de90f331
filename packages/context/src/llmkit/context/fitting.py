"""Budget fitting: drop units (a document, a history item, a chunk ...) until every zone and the total fit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BudgetError
from .render import Dropped
from .zones import ZoneSpec


@dataclasses.dataclass
class Unit:
    """The smallest piece a budget can cut. Lower `keep_rank` is cut first within its zone."""

    zone: str
    tokens: int
    keep_rank: float
    description: str
    payload: Any
    pinned: bool = False
    kept: bool = True
    text: str = ""  # what the unit renders as (hashed per zone for the context log)
    own_message: bool = False  # renders as a message of its own (so dropping it saves the template's overhead)
    # Protected units (a turn stating a constraint, a stated constraint's anchor line) are cut only after
    # every unprotected unit; a higher level is cut later. `constraint` names what cutting one loses.
    protection: int = 0
    constraint: str | None = None


def _drop(unit: Unit, reason: str, dropped: list[Dropped]) -> None:
    unit.kept = False
    if unit.protection:
        reason += f"; only protected content was left, so this cut loses {unit.constraint!r}"
    dropped.append(Dropped(unit.zone, unit.description, unit.tokens, reason, unit.constraint))


def cut_order(unit: Unit) -> tuple[int, float]:
    """Within a zone: unprotected before protected, then lowest keep_rank first."""
    return (unit.protection, unit.keep_rank)


def fit_zones(units: Sequence[Unit], zones: dict[str, ZoneSpec], dropped: list[Dropped]) -> None:
    """Cut each zone's droppable units (lowest keep_rank first) until its content fits its own budget."""
    for name, spec in zones.items():
        members = [u for u in units if u.zone == name and u.kept]
        used = sum(u.tokens for u in members)
        pinned = sum(u.tokens for u in members if u.pinned)
        if pinned > spec.budget:
            raise BudgetError(
                f"zone {name!r} must keep {pinned} tokens of pinned content but its budget is {spec.budget}; "
                "raise the zone budget or shorten that content"
            )
        for unit in sorted((u for u in members if not u.pinned), key=cut_order):
            if used <= spec.budget:
                break
            _drop(unit, f"zone {name!r} over its budget of {spec.budget} tokens", dropped)
            used -= unit.tokens


def fit_total(
    units: Sequence[Unit],
    zones: dict[str, ZoneSpec],
    budget: int,
    measure: Callable[[], int],
    dropped: list[Dropped],
) -> int:
    """Cut units from the lowest-priority zones until `measure()` (the exact prompt tokens) is within `budget`.

    Protected units go only after every unprotected one, whatever their zone. Each round drops about the estimated overshoot (unit tokens plus, for units that are messages of
    their own, the template's measured per-message overhead), then measures again: the result is
    exact whatever the chat template adds.
    """
    total = measure()
    kept = [u for u in units if u.kept]
    messages = sum(u.own_message for u in kept) + 2
    per_message = max(0.0, (total - sum(u.tokens for u in kept)) / messages)
    candidates = sorted(
        (u for u in units if u.kept and not u.pinned),
        key=lambda u: (u.protection, zones[u.zone].priority, u.keep_rank),
    )
    while total > budget:
        overshoot = total - budget
        freed = 0
        while candidates and freed < overshoot:
            unit = candidates.pop(0)
            _drop(unit, f"total over the budget of {budget} tokens", dropped)
            freed += max(unit.tokens + (per_message if unit.own_message else 0.0), 1)
        if freed == 0:
            raise BudgetError(
                f"the context needs {total} tokens with only required content left (system, tools, pinned items, "
                f"the current turn and anchoring reminders); the budget is {budget}"
            )
        total = measure()
    return total
