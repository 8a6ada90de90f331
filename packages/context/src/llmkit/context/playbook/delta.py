"""Delta updates to a playbook (add, refine, retire) and the reflector's bullet tags: schemas for structured output."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class AddBullet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["add"]
    section: str = Field(description="e.g. strategies, pitfalls, formulas, checks")
    text: str = Field(min_length=1)


class RefineBullet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["refine"]
    bullet_id: str
    text: str = Field(min_length=1)


class RetireBullet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["retire"]
    bullet_id: str
    reason: str


Operation = Annotated[AddBullet | RefineBullet | RetireBullet, Field(discriminator="op")]


class PlaybookDelta(BaseModel):
    """A curator's output: a few itemized operations, never a replacement playbook."""

    model_config = ConfigDict(extra="forbid")

    operations: list[Operation] = Field(default_factory=list)


class BulletTag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bullet_id: str
    tag: Literal["helpful", "harmful", "neutral"]


class Reflection(BaseModel):
    """The reflector's diagnosis of one trajectory."""

    model_config = ConfigDict(extra="forbid")

    error_identification: str = Field(description="what went wrong, or 'none'")
    root_cause: str
    key_insight: str = Field(description="the reusable lesson, phrased as a strategy")
    bullet_tags: list[BulletTag] = Field(default_factory=list)
