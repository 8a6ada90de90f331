"""The playbook: strategy bullets with helpful/harmful counters, changed only by delta operations."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ContextError
from ..retrieval.dense import Embedder
from .delta import AddBullet, BulletTag, PlaybookDelta, RefineBullet, RetireBullet


@dataclasses.dataclass
class Bullet:
    bullet_id: str
    section: str
    text: str
    helpful: int = 0
    harmful: int = 0
    retired: str | None = None  # the reason, once retired (kept for audit, never rendered)
    history: list[str] = dataclasses.field(default_factory=list)  # earlier texts, oldest first


@dataclasses.dataclass
class ApplyReport:
    added: list[str] = dataclasses.field(default_factory=list)
    refined: list[str] = dataclasses.field(default_factory=list)
    retired: list[str] = dataclasses.field(default_factory=list)
    merged: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (proposed text, existing id)
    rejected: list[str] = dataclasses.field(default_factory=list)  # why each refused operation was refused


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class Playbook:
    """An evolving list of bullets. Changes come only as deltas; near-identical bullets are merged, not added.

    Guards against context collapse: a delta may retire at most `max_retire_fraction` of the active
    bullets and may hold at most `max_operations` operations; bigger deltas are refused whole.
    """

    def __init__(
        self,
        bullets: Iterable[Bullet] = (),
        *,
        embedder: Embedder | None = None,
        similarity_threshold: float | None = None,
        max_operations: int = 8,
        max_retire_fraction: float = 0.34,
    ):
        self.bullets = list(bullets)
        self.embedder = embedder
        self.similarity_threshold = similarity_threshold or (0.9 if embedder else 0.8)
        self.max_operations, self.max_retire_fraction = max_operations, max_retire_fraction

    @property
    def active(self) -> list[Bullet]:
        return [b for b in self.bullets if b.retired is None]

    def find(self, bullet_id: str) -> Bullet | None:
        return next((b for b in self.bullets if b.bullet_id == bullet_id), None)

    def similarity(self, a: str, b: str) -> float:
        """Cosine of embeddings with an embedder, else Jaccard of word sets."""
        if self.embedder is not None:
            vectors = self.embedder.embed([a, b])
            return float(vectors[0] @ vectors[1])
        wa, wb = _words(a), _words(b)
        return len(wa & wb) / len(wa | wb) if wa | wb else 1.0

    def near_duplicate(self, text: str, exclude: str | None = None) -> Bullet | None:
        return next(
            (
                b
                for b in self.active
                if b.bullet_id != exclude and self.similarity(text, b.text) >= self.similarity_threshold
            ),
            None,
        )

    def _next_id(self) -> str:
        numbers = [int(b.bullet_id.split("-")[1]) for b in self.bullets if re.fullmatch(r"b-\d+", b.bullet_id)]
        return f"b-{max(numbers, default=0) + 1}"

    def apply(self, delta: PlaybookDelta) -> ApplyReport:
        """Apply a delta's operations in order; refused operations are reported, never applied partly."""
        report = ApplyReport()
        retires = sum(isinstance(op, RetireBullet) for op in delta.operations)
        if len(delta.operations) > self.max_operations:
            report.rejected.append(f"delta has {len(delta.operations)} operations (limit {self.max_operations})")
            return report
        if self.active and retires > max(1, int(self.max_retire_fraction * len(self.active))):
            report.rejected.append(
                f"delta retires {retires} of {len(self.active)} bullets: a wholesale rewrite, refused"
            )
            return report
        for op in delta.operations:
            if isinstance(op, AddBullet):
                duplicate = self.near_duplicate(op.text)
                if duplicate:
                    report.merged.append((op.text, duplicate.bullet_id))
                    continue
                bullet = Bullet(self._next_id(), op.section, op.text)
                self.bullets.append(bullet)
                report.added.append(bullet.bullet_id)
                continue
            bullet = self.find(op.bullet_id)
            if bullet is None or bullet.retired is not None:
                report.rejected.append(f"{op.op} {op.bullet_id}: no such active bullet")
            elif isinstance(op, RefineBullet):
                bullet.history.append(bullet.text)
                bullet.text = op.text
                report.refined.append(bullet.bullet_id)
            else:
                bullet.retired = op.reason
                report.retired.append(bullet.bullet_id)
        return report

    def tag(self, tags: Iterable[BulletTag]) -> None:
        """Count the reflector's verdicts; unknown ids are ignored (the reflector may cite retired bullets)."""
        for tag in tags:
            bullet = self.find(tag.bullet_id)
            if bullet is not None and tag.tag != "neutral":
                setattr(bullet, tag.tag, getattr(bullet, tag.tag) + 1)

    def dedup(self) -> list[tuple[str, str]]:
        """Merge near-identical active bullets: the older keeps both counters, the newer is retired."""
        merged = []
        for bullet in self.active:
            if bullet.retired is not None:
                continue
            for other in self.active:
                if (
                    other is bullet
                    or other.retired is not None
                    or self.bullets.index(other) < self.bullets.index(bullet)
                ):
                    continue
                if self.similarity(bullet.text, other.text) >= self.similarity_threshold:
                    bullet.helpful += other.helpful
                    bullet.harmful += other.harmful
                    other.retired = f"duplicate of {bullet.bullet_id}"
                    merged.append((other.bullet_id, bullet.bullet_id))
        return merged

    def render(self) -> str:
        """The active bullets by section, each with its id and counters (what the generator reads)."""
        sections: dict[str, list[Bullet]] = {}
        for bullet in self.active:
            sections.setdefault(bullet.section, []).append(bullet)
        parts = []
        for section, bullets in sections.items():
            lines = [f"[{b.bullet_id}] helpful={b.helpful} harmful={b.harmful} :: {b.text}" for b in bullets]
            parts.append(f"## {section}\n" + "\n".join(lines))
        return "\n\n".join(parts)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(json.dumps({"bullets": [dataclasses.asdict(b) for b in self.bullets]}, indent=1))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str | Path, **options) -> Playbook:
        try:
            data = json.loads(Path(path).read_text())
            return cls((Bullet(**b) for b in data["bullets"]), **options)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ContextError(f"{path} is not a playbook file: {err}") from None
