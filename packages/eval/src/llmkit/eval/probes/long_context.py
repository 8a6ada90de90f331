"""Lost in the middle (Liu et al. 2023): one fact placed at a chosen depth of a long context; recall by position."""

from __future__ import annotations

import random

from ..data import Dataset, Sample

_COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "silver", "golden", "black", "white"]
_OBJECTS = ["door", "box", "gate", "locker", "cabinet", "drawer", "safe", "chest", "vault", "trunk"]
_PLACES = ["library", "bakery", "museum", "harbor", "garden", "station", "market", "theater", "school", "clinic"]
_TOWNS = ["Averton", "Brookfield", "Caldera", "Dunmore", "Eastwick", "Fairhaven", "Glenrock", "Hollins"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_FILLERS = [
    "The {place} in {town} opens early on {day}s and closes when the last visitor leaves.",
    "Most people in {town} walk to the {place} because the road is narrow and often busy.",
    "On {day}s the {place} of {town} is quieter than usual, and the staff repaint the benches.",
    "A small river runs behind the {place} in {town}, and ducks gather there in the spring.",
    "Visitors to {town} often say the {place} is the friendliest spot in the whole valley.",
    "Every {day} a musician plays near the {place} in {town} until the street lamps come on.",
]
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
INSTRUCTION = "Read the notes below and answer the question at the end.\n\n"


def _filler(rng: random.Random, count: int) -> list[str]:
    return [
        rng.choice(_FILLERS).format(place=rng.choice(_PLACES), town=rng.choice(_TOWNS), day=rng.choice(_DAYS))
        for _ in range(count)
    ]


def lost_in_the_middle(
    facts: int = 20, sentences: int = 40, depths: tuple[float, ...] = DEPTHS, seed: int = 0
) -> Dataset:
    """`facts` needles, each at every depth of its own `sentences`-sentence context (facts x depths samples)."""
    rng = random.Random(seed)
    pairs = rng.sample([(c, o) for c in _COLORS for o in _OBJECTS], facts)
    samples = []
    for index, (color, thing) in enumerate(pairs):
        code = str(rng.randint(1000, 9999))
        haystack = _filler(rng, sentences)
        for depth in depths:
            lines = list(haystack)
            lines.insert(round(depth * len(lines)), f"The secret code for the {color} {thing} is {code}.")
            question = f"What is the secret code for the {color} {thing}? Answer with the code only."
            prompt = INSTRUCTION + " ".join(lines) + f"\n\nQuestion: {question}"
            samples.append(Sample(f"needle-{index:02d}@{depth:.2f}", {"question": prompt, "depth": depth}, code))
    provenance = {
        "source": "generated",
        "generator": "llmkit.eval.probes.long_context",
        "seed": seed,
        "facts": facts,
        "sentences": sentences,
    }
    return Dataset("lost_in_the_middle", samples, provenance)
