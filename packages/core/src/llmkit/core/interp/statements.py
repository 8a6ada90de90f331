"""A built-in set of simple true and false statements for truth probes: 200 items from three templates
written for llmkit (capital cities, two-number addition, number comparison); every false item is its
true twin with the answer swapped, so the two classes share their wording."""

from __future__ import annotations

import dataclasses
import random

# Country -> capital (general knowledge, chosen so each capital is a well-known city).
CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Russia": "Moscow",
    "Egypt": "Cairo",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Poland": "Warsaw",
    "Hungary": "Budapest",
    "Thailand": "Bangkok",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Argentina": "Buenos Aires",
    "Cuba": "Havana",
    "Mexico": "Mexico City",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "India": "New Delhi",
    "South Korea": "Seoul",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Belgium": "Brussels",
    "the Netherlands": "Amsterdam",
    "Switzerland": "Bern",
    "the Czech Republic": "Prague",
    "Chile": "Santiago",
    "Colombia": "Bogota",
    "Vietnam": "Hanoi",
    "Indonesia": "Jakarta",
    "the Philippines": "Manila",
    "Ukraine": "Kyiv",
}


@dataclasses.dataclass(frozen=True)
class Statement:
    text: str
    label: bool  # True for a true statement
    template: str  # "capital", "addition" or "comparison"
    pair: int = 0  # a true statement and its false twin share a pair number (keep them on one side of a split)


def _capitals() -> list[Statement]:
    countries = list(CAPITALS)
    items = []
    for i, country in enumerate(countries):
        wrong = CAPITALS[countries[(i + 7) % len(countries)]]
        items.append(Statement(f"The capital of {country} is {CAPITALS[country]}.", True, "capital"))
        items.append(Statement(f"The capital of {country} is {wrong}.", False, "capital"))
    return items


def _addition(rng: random.Random, count: int) -> list[Statement]:
    items = []
    for _ in range(count):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        items.append(Statement(f"{a} + {b} = {a + b}.", True, "addition"))
        items.append(Statement(f"{a} + {b} = {wrong}.", False, "addition"))
    return items


def _comparison(rng: random.Random, count: int) -> list[Statement]:
    items = []
    for _ in range(count):
        small, large = sorted(rng.sample(range(1, 100), 2))
        items.append(Statement(f"{large} is larger than {small}.", True, "comparison"))
        items.append(Statement(f"{small} is larger than {large}.", False, "comparison"))
    return items


def true_false_statements(seed: int = 0) -> list[Statement]:
    """80 capital, 60 addition and 60 comparison statements, half true, in a fixed order for a seed."""
    rng = random.Random(seed)
    items = [*_capitals(), *_addition(rng, 30), *_comparison(rng, 30)]
    return [dataclasses.replace(item, pair=i // 2) for i, item in enumerate(items)]
