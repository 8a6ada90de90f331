"""An optional LM extractor of stated constraints, through any backend's structured output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..structured import StructuredGenerator
from .rules import Detection

EXTRACTOR_SYSTEM = (
    "You find the constraints and preferences a user states for the rest of a conversation "
    "(allergies, diets, rules such as 'never ...' or 'always ...', units, formats, likes and dislikes), "
    "and corrections that take back an earlier one. Quote the user's words exactly. "
    "Reply with an empty list when the message states none."
)


class ExtractedConstraint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the sentence of the user's message that states it, quoted exactly")
    kind: Literal["constraint", "preference"]
    corrects: str | None = Field(
        default=None, description="when it takes back an earlier constraint: that constraint, as listed"
    )


class ExtractedConstraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    constraints: list[ExtractedConstraint]


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class LMConstraintExtractor:
    """Ask the model (through a `StructuredGenerator`, e.g. `PromptedJSON(backend)`) for stated constraints.

    Only exact quotes of the message are accepted: a paraphrase or invented constraint is refused and
    recorded in `rejected` (quote, reason), never promoted.
    """

    name = "lm"

    def __init__(self, structured: StructuredGenerator):
        self.structured = structured
        self.rejected: list[tuple[str, str]] = []

    def detect(self, text: str, active: Sequence[str] = ()) -> list[Detection]:
        earlier = "\n".join(f"- {c}" for c in active) or "- (none)"
        messages = [
            {"role": "system", "content": EXTRACTOR_SYSTEM},
            {
                "role": "user",
                "content": f"Constraints in force so far:\n{earlier}\n\nThe user's new message:\n<<<\n{text}\n>>>",
            },
        ]
        extracted = self.structured.generate(messages, ExtractedConstraints)
        message = _normalized(text)
        found = []
        for item in extracted.constraints:
            quote = item.text.strip()
            if not quote or _normalized(quote) not in message:
                self.rejected.append((item.text, "not a quote of the user's message"))
                continue
            found.append(
                Detection(quote, item.kind, "lm", is_correction=item.corrects is not None, corrects=item.corrects)
            )
        return found
