"""Running an experiment: each (arm, seed) unit trains and/or evaluates, is tracked in MLflow, and is recorded
as finished in state.json, so a killed experiment continues with the first unfinished unit."""

from __future__ import annotations

import gc
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import LabError
from .registry import Registry, data_manifest, write_model_card
from .spec import Arm, Experiment
from .tracking import Tracker, default_tracking_uri, git_commit

STATE = "state.json"


@dataclass
class Unit:
    arm: Arm
    seed: int

    @property
    def key(self) -> str:
        return f"{self.arm.slug}/seed-{self.seed}"


def units(experiment: Experiment) -> list[Unit]:
    return [Unit(arm, seed) for arm in experiment.arms for seed in experiment.spec.seeds]


def _read_state(path: Path, experiment: Experiment) -> dict[str, Any]:
    if not path.is_file():
        return {"experiment": experiment.name, "fingerprint": experiment.fingerprint, "units": {}}
    state = json.loads(path.read_text())
    if state.get("fingerprint") != experiment.fingerprint:
        raise LabError(
            f"{path.parent} holds a different experiment (its spec changed since it started); "
            "use another --output or restore the spec"
        )
    return state


def _write_state(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    os.replace(partial, path)


def check_arms(experiment: Experiment) -> None:
    """Every arm's train options are valid for its method (before anything runs)."""
    from llmkit.train.config import CONFIG_CLASSES, load_config

    for arm in experiment.arms:
        options = dict(arm.section("train"))
        if not options:
            if not arm.section("eval").get("model"):
                raise LabError(f"arm {arm.name!r}: with no train section, eval.model names the model to evaluate")
            continue
        method = options.pop("method", "sft")
        if method not in CONFIG_CLASSES:
            raise LabError(f"arm {arm.name!r}: unknown training method {method!r}")
        config = load_config(CONFIG_CLASSES[method], None, options)
        if arm.section("eval") and getattr(config, "lora_rank", 0) and not config.save_merged:
            raise LabError(f"arm {arm.name!r}: evaluation needs the merged model; leave save_merged on")
        if arm.section("eval").get("model"):
            raise LabError(f"arm {arm.name!r}: eval.model is the trained model when the spec trains; remove it")
        if not arm.section("eval").get("tasks") and arm.section("eval"):
            raise LabError(f"arm {arm.name!r}: eval.tasks lists the tasks to run")


class ExperimentRunner:
    def __init__(self, experiment: Experiment, output: str | Path, tracking_uri: str | None = None):
        self.experiment = experiment
        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.state_path = self.output / STATE
        self.state = _read_state(self.state_path, experiment)
        self.tracking_uri = tracking_uri or self.state.get("tracking_uri") or default_tracking_uri(self.output)
        self.state["tracking_uri"] = self.tracking_uri
        self.tracker = Tracker(self.tracking_uri, experiment.name)
        self.registry = Registry(self.tracking_uri)
        self.commit = git_commit(Path.cwd()) or git_commit(Path(__file__).parent)

    def run(self, progress: bool = True) -> dict[str, Any]:
        check_arms(self.experiment)
        todo = [u for u in units(self.experiment) if u.key not in self.state["units"]]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        total = len(units(self.experiment))
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task(self.experiment.name, total=total, completed=total - len(todo))
            for unit in todo:
                bar.update(task, description=f"{self.experiment.name}: {unit.arm.name} seed {unit.seed}")
                self.state["units"][unit.key] = self._run_unit(unit)
                _write_state(self.state_path, self.state)
                bar.advance(task)
        return self.state

    def _run_unit(self, unit: Unit) -> dict[str, Any]:
        directory = self.output / "arms" / unit.arm.slug / f"seed-{unit.seed}"
        if directory.exists():  # a unit a killed experiment left half done starts over
            shutil.rmtree(directory)
        self.tracker.end_unfinished(unit.key)
        tags = {
            "llmkit.unit": unit.key,
            "llmkit.arm": unit.arm.name,
            "llmkit.seed": str(unit.seed),
            **({"mlflow.source.git.commit": self.commit, "llmkit.git_commit": self.commit} if self.commit else {}),
        }
        run_id = self.tracker.start(f"{unit.arm.name} seed {unit.seed}", tags)
        try:
            record = self._train_and_evaluate(unit, directory, run_id)
        except BaseException:
            self.tracker.finish(run_id, "FAILED")
            raise
        self.tracker.finish(run_id)
        return {"run_id": run_id, "arm": unit.arm.name, "seed": unit.seed, "dir": str(directory), **record}

    def _train_and_evaluate(self, unit: Unit, directory: Path, run_id: str) -> dict[str, Any]:
        arm, record = unit.arm, {}
        self.tracker.params(run_id, {**arm.config, "seed": unit.seed})
        eval_options = arm.section("eval")
        model = eval_options.get("model")
        if arm.section("train"):
            model_dir, record = self._train(unit, directory / "train", run_id)
            model = str(model_dir)
        if eval_options:
            from llmkit.eval.evaluate import evaluate_model

            results = evaluate_model(
                model,
                eval_options["tasks"],
                directory / "eval",
                backend=eval_options.get("backend", "reference"),
                backend_options=eval_options.get("backend_options"),
                device=eval_options.get("device", "auto"),
                limit=eval_options.get("limit"),
                seed=unit.seed,
                batch_size=eval_options.get("batch_size", 8),
                cache=self.output / "eval-cache.sqlite",
            )
            values = {
                f"eval.{task}.{metric}": estimate["value"]
                for task, entry in results["tasks"].items()
                for metric, estimate in entry["metrics"].items()
            }
            self.tracker.metrics(run_id, values)
            self.tracker.artifact(run_id, directory / "eval", "eval")
            record["eval"] = values
            if "model_name" in record:  # the card again, now with the evaluation
                self.tracker.artifact(run_id, self._card(unit, directory / "train", Path(model), results), "model")
        gc.collect()
        return record

    def _train(self, unit: Unit, output: Path, run_id: str) -> tuple[Path, dict[str, Any]]:
        from llmkit.train import train
        from llmkit.train.metrics import read_metrics
        from llmkit.train.plotting import plot_runs

        options = dict(unit.arm.section("train"))
        method = options.pop("method", "sft")
        result = train(method, output_dir=str(output), seed=unit.seed, progress=False, **options)
        steps = read_metrics(result.output_dir)
        self.tracker.step_metrics(run_id, steps)
        names = [k for k in ("loss", "eval_loss") if any(k in r for r in steps)]
        curves = plot_runs([result.output_dir], names, result.final_dir / "model" / "curves.png", unit.key)
        for name in ("config.yaml", "metrics.jsonl", "data_report.json"):
            if (result.output_dir / name).is_file():
                self.tracker.artifact(run_id, result.output_dir / name, "train")
        self.tracker.artifact(run_id, curves, "train")
        manifest = data_manifest(options.get("data"))
        if manifest is not None:
            self.tracker.client.set_tag(run_id, "llmkit.data_manifest", manifest["dataset_hash"])
            self.tracker.artifact(run_id, Path(f"{options['data']}.manifest.json"), "train")
        model_dir = result.final_dir / "model"
        last = {f"train.{k}": v for k, v in steps[-1].items() if k in ("loss", "eval_loss")} if steps else {}
        card = self._card(unit, output, model_dir, None)
        name = self.experiment.name
        version = self.registry.register(name, model_dir, run_id, f"{unit.arm.name}, seed {unit.seed}")
        self.tracker.artifact(run_id, card, "model")
        return model_dir, {"train": last, "model_name": name, "model_version": version}

    def _card(self, unit: Unit, train_dir: Path, model_dir: Path, evaluation: dict[str, Any] | None) -> Path:
        from llmkit.train.metrics import read_metrics

        config = json.loads(json.dumps(_yaml(train_dir / "config.yaml")))
        curves = model_dir / "curves.png"
        return write_model_card(
            model_dir,
            config=config,
            metrics=read_metrics(train_dir),
            curves=curves if curves.is_file() else None,
            evaluation=evaluation,
        )


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def run_experiment(
    experiment: Experiment, output: str | Path, tracking_uri: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run every unfinished (arm, seed) unit; returns state.json's content."""
    return ExperimentRunner(experiment, output, tracking_uri).run(progress)
