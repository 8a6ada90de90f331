"""Model versions: a model card beside every trained model, versions in MLflow's registry, phases and promotion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import LabError

PHASES = ("research", "evaluation", "deployment", "maintenance")
PHASE_TAG = "llmkit.phase"
GATE_TAG = "llmkit.gate"  # "passed" or "failed", with the gate file and the baseline in llmkit.gate_detail
CARD = "MODEL_CARD.md"


@dataclass
class ModelVersionInfo:
    name: str
    version: str
    phase: str
    source: str
    run_id: str | None
    gate: str | None
    created_ms: int


def data_manifest(data: str | None) -> dict[str, Any] | None:
    """The `llmkit data` manifest of a training file (DATA.manifest.json beside it), when there is one."""
    if not data:
        return None
    path = Path(f"{data}.manifest.json")
    return json.loads(path.read_text()) if path.is_file() else None


def write_model_card(
    model_dir: Path,
    *,
    config: dict[str, Any],
    metrics: list[dict[str, Any]],
    curves: Path | None,
    evaluation: dict[str, Any] | None = None,
    gates: str | None = None,
) -> Path:
    """MODEL_CARD.md in the model's directory: base, data manifest, config, training curves, eval and gates."""
    manifest = data_manifest(config.get("data"))
    last = metrics[-1] if metrics else {}
    lines = [
        f"# Model card: {model_dir}",
        "",
        f"- base model: `{config.get('model')}`",
        f"- method: {config.get('method', 'sft')}, {last.get('step', 0)} steps, seed {config.get('seed')}",
        f"- training data: `{config.get('data')}`"
        + (
            f" (llmkit data manifest: dataset_hash `{manifest['dataset_hash']}`, {manifest.get('records')} records)"
            if manifest
            else " (no `llmkit data` manifest beside it)"
        ),
        "",
        "## Training curves",
        "",
        "| step | " + " | ".join(k for k in ("loss", "eval_loss", "lr") if any(k in r for r in metrics)) + " |",
    ]
    keys = [k for k in ("loss", "eval_loss", "lr") if any(k in r for r in metrics)]
    lines.append("|---|" + "---|" * len(keys))
    for record in metrics:
        cells = [f"{record[k]:.4g}" if isinstance(record.get(k), int | float) else "" for k in keys]
        lines.append(f"| {record['step']} | " + " | ".join(cells) + " |")
    if curves is not None:
        lines += ["", f"![training curves]({curves.name})"]
    if evaluation:
        lines += ["", "## Evaluation", "", "| task | metric | value | 95% CI | n |", "|---|---|---|---|---|"]
        for task, entry in evaluation.get("tasks", {}).items():
            for metric, estimate in entry.get("metrics", {}).items():
                lines.append(
                    f"| {task} | {metric} | {estimate['value']:.4f} | "
                    f"[{estimate['ci_low']:.4f}, {estimate['ci_high']:.4f}] | {estimate['n']} |"
                )
    lines += ["", "## Gate results", "", gates or "No release gate has been run on this model yet."]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    path = model_dir / CARD
    path.write_text("\n".join(lines))
    return path


class Registry:
    """MLflow's model registry (same store as tracking) with llmkit's phases as a version tag."""

    def __init__(self, tracking_uri: str):
        from .tracking import client

        self.client = client(tracking_uri)

    def register(self, name: str, model_dir: Path, run_id: str | None, description: str = "") -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name, source=str(Path(model_dir).resolve()), run_id=run_id, description=description
        )
        self.client.set_model_version_tag(name, version.version, PHASE_TAG, PHASES[0])
        return str(version.version)

    def versions(self, name: str | None = None) -> list[ModelVersionInfo]:
        query = f"name = '{name}'" if name else ""
        found = self.client.search_model_versions(query)
        return sorted(
            (
                ModelVersionInfo(
                    v.name,
                    str(v.version),
                    v.tags.get(PHASE_TAG, PHASES[0]),
                    v.source,
                    v.run_id,
                    v.tags.get(GATE_TAG),
                    v.creation_timestamp,
                )
                for v in found
            ),
            key=lambda v: (v.name, int(v.version)),
        )

    def version(self, name: str, version: str) -> ModelVersionInfo:
        for info in self.versions(name):
            if info.version == str(version):
                return info
        raise LabError(f"no version {version} of model {name!r} in the registry")

    def record_gate(self, name: str, version: str, passed: bool, detail: str) -> None:
        self.version(name, version)
        self.client.set_model_version_tag(name, version, GATE_TAG, "passed" if passed else "failed")
        self.client.set_model_version_tag(name, version, "llmkit.gate_detail", detail[:5000])

    def promote(self, name: str, version: str, phase: str) -> ModelVersionInfo:
        """Move a version one phase on (research → evaluation → deployment → maintenance).

        Deployment needs a passed release gate recorded on the version (`llmkit registry gate`)."""
        if phase not in PHASES:
            raise LabError(f"unknown phase {phase!r}; phases: {' → '.join(PHASES)}")
        info = self.version(name, version)
        current, target = PHASES.index(info.phase), PHASES.index(phase)
        if target != current + 1:
            raise LabError(
                f"{name} version {version} is in {info.phase}; it can move to "
                + (f"{PHASES[current + 1]} only" if current + 1 < len(PHASES) else "no later phase")
                + f" (phases: {' → '.join(PHASES)})"
            )
        if phase == "deployment" and info.gate != "passed":
            raise LabError(
                f"{name} version {version} has no passed release gate ({info.gate or 'none run'}); "
                f"run `llmkit registry gate {name} {version} GATES.yaml --baseline ...` first"
            )
        self.client.set_model_version_tag(name, version, PHASE_TAG, phase)
        return self.version(name, version)
