"""Attack generators: each turns a seed into one or more attacks (the user turns sent to the target).

A generator is `generator(seed, context) -> list[(variant, turns)]`. The built-ins are registered by name in
an `AttackRegistry`; other packages add theirs through the entry-point group `llmkit.redteam_attacks` (an
entry point is `register(registry)`), and a name registered twice is an error naming both sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from llmkit.core.sampling import SamplingParams

from ..client import ModelClient
from ..errors import EvalError
from .seeds import Seed
from .transforms import ENCODINGS, ESCALATION_OPENERS, PARAPHRASE_PROMPT, TEMPLATES

ENTRY_POINT_GROUP = "llmkit.redteam_attacks"


@dataclasses.dataclass(frozen=True)
class Attack:
    """One attack: the user turns sent in order (the target's replies go in between), against one seed."""

    id: str
    seed_id: str
    category: str
    generator: str
    variant: str
    turns: tuple[str, ...]
    system: str | None
    check: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "turns": list(self.turns)}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Attack:
        return cls(**{**row, "turns": tuple(row["turns"])})


@dataclasses.dataclass
class AttackContext:
    """What a generator may use: an attacker model (paraphrase) and how many variants to ask of it."""

    attacker: ModelClient | None = None
    paraphrases: int = 2
    seed: int = 0


Generator = Callable[[Seed, AttackContext], list[tuple[str, tuple[str, ...]]]]


def direct(seed: Seed, context: AttackContext) -> list[tuple[str, tuple[str, ...]]]:
    """the goal as it is (the baseline every other generator is compared with)"""
    return [("plain", (seed.goal,))]


def template(seed: Seed, context: AttackContext) -> list[tuple[str, tuple[str, ...]]]:
    """the goal inside each jailbreak template (persona, fiction, prefix injection, refusal suppression, authority)"""
    return [(name, (text.format(goal=seed.goal),)) for name, text in TEMPLATES.items()]


def _encoding(name: str) -> Generator:
    encode, wrapper = ENCODINGS[name]

    def generator(seed: Seed, context: AttackContext) -> list[tuple[str, tuple[str, ...]]]:
        return [(name, (wrapper.format(encoded=encode(seed.goal)),))]

    generator.__doc__ = f"the goal {name}-encoded, with an instruction to decode and follow it"
    return generator


def multi_turn(seed: Seed, context: AttackContext) -> list[tuple[str, tuple[str, ...]]]:
    """Escalation: two rapport-building turns, then the goal (the target answers each turn)."""
    return [("escalation", (*ESCALATION_OPENERS, seed.goal))]


def paraphrase(seed: Seed, context: AttackContext) -> list[tuple[str, tuple[str, ...]]]:
    """The goal reworded by the attacker model (sampled, seeded): `context.paraphrases` variants."""
    if context.attacker is None:
        raise EvalError("the paraphrase generator needs an attacker model")
    params = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=80, n=context.paraphrases, seed=context.seed)
    (replies,) = context.attacker.chat(
        [[{"role": "user", "content": PARAPHRASE_PROMPT.format(goal=seed.goal)}]], [params]
    )
    variants = []
    for number, reply in enumerate(replies):
        text = reply.content.strip().removeprefix("Rewritten request:").strip().strip('"')
        if text:
            variants.append((f"paraphrase{number}", (text,)))
    return variants


class AttackRegistry:
    """Generators by name; a name registered twice is an error naming both sources."""

    def __init__(self) -> None:
        self._generators: dict[str, tuple[Generator, str]] = {}

    def add(self, name: str, generator: Generator, *, source: str) -> None:
        if not name or not isinstance(name, str):
            raise EvalError(f"{source} registered an attack generator with an invalid name {name!r}")
        if name in self._generators:
            raise EvalError(f"attack generator {name!r} is registered twice: by {self._generators[name][1]} and by {source}")  # fmt: skip
        self._generators[name] = (generator, source)

    def get(self, name: str) -> Generator:
        if name not in self._generators:
            raise EvalError(f"unknown attack generator {name!r}; installed: {', '.join(self._generators)}")
        return self._generators[name][0]

    def source(self, name: str) -> str:
        self.get(name)
        return self._generators[name][1]

    def names(self) -> list[str]:
        return list(self._generators)


BUILTIN = "llmkit.eval.redteam"


def builtin_registry() -> AttackRegistry:
    registry = AttackRegistry()
    registry.add("direct", direct, source=BUILTIN)
    registry.add("template", template, source=BUILTIN)
    for name in ENCODINGS:
        registry.add(name, _encoding(name), source=BUILTIN)
    registry.add("multi_turn", multi_turn, source=BUILTIN)
    registry.add("paraphrase", paraphrase, source=BUILTIN)
    return registry


def load_registry() -> AttackRegistry:
    """The built-in generators plus every installed `llmkit.redteam_attacks` entry point's."""
    registry = builtin_registry()
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()(_Scoped(registry, f"{point.value} ({point.dist.name if point.dist else 'unknown'})"))
    return registry


@dataclasses.dataclass
class _Scoped:
    """The registry as a plugin's entry point sees it: `add(name, generator)` filed under the plugin."""

    registry: AttackRegistry
    source: str

    def add(self, name: str, generator: Generator) -> None:
        self.registry.add(name, generator, source=self.source)


def plan_attacks(
    seeds: Sequence[Seed], generators: Sequence[str], registry: AttackRegistry, context: AttackContext
) -> list[Attack]:
    """Every (seed, generator, variant) attack, ids `seed/generator/variant`."""
    attacks = []
    for seed in seeds:
        for name in generators:
            for variant, turns in registry.get(name)(seed, context):
                if not turns or not all(isinstance(t, str) and t for t in turns):
                    raise EvalError(f"attack generator {name!r} gave empty turns for seed {seed.id!r}")
                attacks.append(Attack(f"{seed.id}/{name}/{variant}", seed.id, seed.category, name, variant, tuple(turns), seed.system, seed.check))  # fmt: skip
    ids = [a.id for a in attacks]
    if len(set(ids)) != len(ids):
        raise EvalError("two attacks got the same id: a generator repeats a variant name")
    return attacks
