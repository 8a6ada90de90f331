"""Promote what the user states in a message into the window's anchored constraints (and corrections)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ..compression.corrections import Correction
from ..items import ContextItem
from ..state import StateObject
from .record import StatedConstraint, read_record, superseded_target, write_record
from .rules import Detection


class ConstraintDetector(Protocol):
    """Finds stated constraints and corrections in one user message (`active`: the wordings in force)."""

    name: str

    def detect(self, text: str, active: Sequence[str] = ()) -> list[Detection]: ...


def detect_all(detectors: Sequence[ConstraintDetector], text: str, active: Sequence[str]) -> list[Detection]:
    """Every detector's findings, a sentence found twice (or inside another finding) kept once."""
    found: list[Detection] = []
    for detector in detectors:
        for detection in detector.detect(text, active):
            key = detection.text.lower()
            if not any(key in seen.text.lower() or seen.text.lower() in key for seen in found):
                found.append(detection)
    return found


def promote(
    state: StateObject, corrections: list[Correction], item: ContextItem, detections: Sequence[Detection]
) -> list[StatedConstraint]:
    """Record each detection as a stated constraint; a correction supersedes the constraint it takes back.

    The superseded wording gets a `Correction` (earlier mentions then render struck through with a
    marker); a correction that matches no active constraint and states nothing itself is ignored.
    """
    records = read_record(state)
    promoted = []
    for detection in detections:
        active = [r for r in records if r.active]
        if any(r.text.lower() == detection.text.lower() for r in active):
            continue  # restated: the first statement stays the anchor
        target = superseded_target(detection.text, detection.corrects, active) if detection.is_correction else None
        if detection.is_correction and target is None and detection.source == "rules:correction":
            continue  # "actually ..." about something that was never a constraint
        kind = target.kind if target is not None and detection.source == "rules:correction" else detection.kind
        record = StatedConstraint(detection.text, kind, item.turn, item.item_id, detection.source)
        if target is not None:
            index = records.index(target)
            records[index] = dataclasses.replace(target, superseded_at=item.turn, superseded_by=detection.text)
            corrections.append(Correction(target.text, detection.text, item.turn, item.item_id))
        records.append(record)
        promoted.append(record)
    if promoted:
        write_record(state, records)
        item.metadata["states_constraint"] = [r.text for r in promoted]
    return promoted


def supersede_by_claim(state: StateObject, claim: str, correction: str, turn: int) -> None:
    """`window.correct(claim, ...)`: an active stated constraint whose wording contains `claim` is superseded."""
    records = read_record(state)
    changed = False
    for index, record in enumerate(records):
        if record.active and claim.strip().lower() in record.text.lower():
            records[index] = dataclasses.replace(record, superseded_at=turn, superseded_by=correction)
            changed = True
    if changed:
        write_record(state, records)
