"""Experiment specs: a base config, the factors to vary, seeds; arms that differ from the base only in factors."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import LabError

EVAL_KEYS = {"tasks", "model", "limit", "backend", "backend_options", "batch_size", "device"}
PATH_KEYS = {
    "train.data",
    "train.eval_data",
    "train.model",
    "train.reference_model",
    "train.reward_model",
    "eval.model",
}
SEED_KEYS = {"train.seed", "eval.seed"}


class ArmSpec(BaseModel):
    """An explicit arm: a name and the dotted keys it sets (each must be a named factor)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    set: dict[str, Any]


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base: dict[str, dict[str, Any]]
    factors: dict[str, list[Any]]
    seeds: list[int] = Field(default=[0], min_length=1)
    arms: list[ArmSpec] | None = None  # None: every combination of the factors' values
    reference_arm: str | None = None  # what the other arms are compared with (default: the first)

    @field_validator("base")
    @classmethod
    def _sections(cls, base: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = set(base) - {"train", "eval"}
        if unknown or not base:
            raise ValueError(f"base holds `train` and/or `eval` sections, got {sorted(base) or 'none'}")
        return base


def flatten(base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"train": {"lora_rank": 4}} -> {"train.lora_rank": 4}."""
    return {f"{section}.{key}": value for section, options in base.items() for key, value in options.items()}


def unflatten(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in flat.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


class Arm:
    """One arm: its name, the factor values that define it, and its full flattened config."""

    def __init__(self, name: str, levels: dict[str, Any], config: dict[str, Any]):
        self.name, self.levels, self.config = name, levels, config

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c in "._=-" else "_" for c in self.name)

    def section(self, name: str) -> dict[str, Any]:
        return unflatten(self.config).get(name, {})


class Experiment:
    """A validated spec: the arms, the seeds, and a fingerprint that a resumed run must match."""

    def __init__(self, spec: ExperimentSpec, source: str):
        self.spec, self.source = spec, source
        self.base = flatten(spec.base)
        self.arms = self._arms()
        self.fingerprint = hashlib.sha256(json.dumps(spec.model_dump(), sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trains(self) -> bool:
        return "train" in self.spec.base

    @property
    def reference(self) -> Arm:
        return next(a for a in self.arms if a.name == (self.spec.reference_arm or self.arms[0].name))

    def _arms(self) -> list[Arm]:
        spec, factors = self.spec, list(self.spec.factors)
        if not factors:
            raise LabError(f"{self.source}: name at least one factor to vary")
        for factor in factors:
            if factor not in self.base and not _is_option(factor):
                raise LabError(f"{self.source}: factor {factor!r} is not a `train.` or `eval.` option")
            if factor in SEED_KEYS:
                raise LabError(f"{self.source}: {factor} is set per run from `seeds`, not a factor")
        for key in SEED_KEYS & set(self.base):
            raise LabError(f"{self.source}: base sets {key}; seeds come from `seeds: [...]`")
        if spec.arms is None:
            values = [spec.factors[f] for f in factors]
            for factor, levels in zip(factors, values, strict=True):
                if len(levels) < 2 or len({_key(v) for v in levels}) != len(levels):
                    raise LabError(f"{self.source}: factor {factor} needs two or more distinct values, got {levels}")
            settings = [
                (
                    ",".join(f"{f.split('.', 1)[1]}={v}" for f, v in zip(factors, combo, strict=True)),
                    dict(zip(factors, combo, strict=True)),
                )
                for combo in itertools.product(*values)
            ]
        else:
            settings = [(arm.name, arm.set) for arm in spec.arms]
        arms = [self._arm(name, setting, factors) for name, setting in settings]
        self._check_distinct(arms, factors)
        if spec.reference_arm is not None and spec.reference_arm not in {a.name for a in arms}:
            raise LabError(f"{self.source}: reference_arm {spec.reference_arm!r} is not an arm")
        return arms

    def _arm(self, name: str, setting: dict[str, Any], factors: list[str]) -> Arm:
        config = {**self.base, **setting}
        extra = {k: v for k, v in setting.items() if k not in factors and _key(v) != _key(self.base.get(k))}
        if extra:
            detail = ", ".join(f"{k} = {v!r} (base: {self.base.get(k, 'unset')!r})" for k, v in extra.items())
            raise LabError(
                f"{self.source}: arm {name!r} differs from the base in {detail}, which is not a named factor "
                f"(factors: {', '.join(factors)}); name it as a factor or move it into the base"
            )
        levels = {f: config.get(f) for f in factors}
        return Arm(name, levels, config)

    def _check_distinct(self, arms: list[Arm], factors: list[str]) -> None:
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise LabError(f"{self.source}: arm names repeat: {names}")
        seen: dict[str, str] = {}
        for arm in arms:
            key = _key(arm.levels)
            if key in seen:
                raise LabError(f"{self.source}: arms {seen[key]!r} and {arm.name!r} set every factor alike")
            seen[key] = arm.name
        for factor in factors:
            if len({_key(a.levels[factor]) for a in arms}) < 2:
                raise LabError(f"{self.source}: factor {factor} takes one value across the arms; it varies nothing")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _is_option(dotted: str) -> bool:
    section, _, key = dotted.partition(".")
    return bool(key) and (section == "train" or (section == "eval" and key in EVAL_KEYS))


def _absolute(flat: dict[str, Any], root: Path) -> dict[str, Any]:
    """Paths in the spec are relative to the spec file; anything that exists there is made absolute."""
    out = dict(flat)
    for key, value in flat.items():
        if key in PATH_KEYS and isinstance(value, str) and (root / value).exists():
            out[key] = str((root / value).resolve())
        if key == "eval.tasks" and isinstance(value, list):
            out[key] = [str((root / t).resolve()) if (root / str(t)).is_file() else t for t in value]
    return out


def parse_experiment(data: Any, source: str = "spec", root: Path | None = None) -> Experiment:
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in err.errors())
        raise LabError(f"{source}: {problems}") from None
    if root is not None:
        spec.base = unflatten(_absolute(flatten(spec.base), root))
        spec.factors = {k: [_absolute({k: v}, root)[k] for v in vs] for k, vs in spec.factors.items()}
        if spec.arms:
            spec.arms = [ArmSpec(name=a.name, set=_absolute(a.set, root)) for a in spec.arms]
    return Experiment(spec, source)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise LabError(f"no experiment spec at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LabError(f"{path} is not valid YAML: {err}") from None
    return parse_experiment(data, str(path), path.resolve().parent)
