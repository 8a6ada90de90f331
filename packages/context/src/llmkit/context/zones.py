"""The zones of a context window: what each holds, its token budget and its priority."""

from __future__ import annotations

import dataclasses

from .errors import ContextError

# In render order. The first three form the static prefix (byte-identical across calls while
# unchanged); the rest change per call and come after it, so a serving engine's prefix cache
# keeps the prefix and the append-only history.
ZONE_ORDER = ("system", "tools", "documents", "history", "retrieved", "state", "current", "reminders")
STATIC_ZONES = ("system", "tools", "documents")


@dataclasses.dataclass(frozen=True)
class ZoneSpec:
    """A zone's token budget (its content never exceeds it) and priority (higher is cut last)."""

    name: str
    budget: int
    priority: int

    def __post_init__(self) -> None:
        if self.name not in ZONE_ORDER:
            raise ContextError(f"unknown zone {self.name!r}; zones are {', '.join(ZONE_ORDER)}")
        if self.budget < 0:
            raise ContextError(f"zone {self.name!r} has a negative budget ({self.budget})")


# Priorities: the system prompt, the current turn and the anchoring reminders are kept longest;
# retrieved chunks, being re-fetchable, are cut first.
DEFAULT_PRIORITIES = {
    "system": 100,
    "current": 95,
    "reminders": 90,
    "tools": 80,
    "state": 70,
    "documents": 60,
    "history": 50,
    "retrieved": 40,
}
# Share of the total budget each zone may use; they sum past 1 because zones are rarely all full.
DEFAULT_SHARES = {
    "system": 0.15,
    "tools": 0.15,
    "documents": 0.35,
    "history": 0.6,
    "retrieved": 0.3,
    "state": 0.1,
    "current": 0.25,
    "reminders": 0.08,
}


def default_zones(total_budget: int, **overrides: ZoneSpec | int) -> dict[str, ZoneSpec]:
    """One spec per zone from the default shares of `total_budget`; an int override sets that zone's budget."""
    zones = {
        name: ZoneSpec(name, int(total_budget * DEFAULT_SHARES[name]), DEFAULT_PRIORITIES[name]) for name in ZONE_ORDER
    }
    for name, value in overrides.items():
        if name not in zones:
            raise ContextError(f"unknown zone {name!r}; zones are {', '.join(ZONE_ORDER)}")
        zones[name] = value if isinstance(value, ZoneSpec) else dataclasses.replace(zones[name], budget=int(value))
    return zones
