"""`llmkit experiment run | report` and `llmkit registry [--name N] | promote | gate | register`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .errors import LabError

console = Console()


def _tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else sqlite under $LLMKIT_HOME/lab)",
    )


def register_experiment(cli) -> None:
    experiment = cli.command("experiment", help="controlled ablations: arms × seeds, tracked in MLflow, with a report")
    commands = experiment.add_subparsers(dest="experiment_command", metavar="SUBCOMMAND")
    experiment.set_defaults(func=lambda args: experiment.print_help() or 0)
    run = commands.add_parser("run", help="run (or resume) an experiment spec", description="run an experiment")
    run.add_argument("spec", metavar="SPEC.yaml")
    run.add_argument("--output", "-o", help="experiment directory (default runs/experiments/<name>)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _tracking(run)
    run.set_defaults(func=run_command)
    report = commands.add_parser("report", help="rebuild the report of an experiment directory")
    report.add_argument("spec", metavar="SPEC.yaml")
    report.add_argument("--output", "-o", help="experiment directory (default runs/experiments/<name>)")
    report.set_defaults(func=report_command)


def _write_report(experiment, output: Path, state: dict, tracker=None) -> str:
    from .report import build_report, plot_report, report_markdown

    report = build_report(experiment, state)
    markdown = report_markdown(report)
    (output / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (output / "report.md").write_text(markdown)
    plot_report(report, output / "report.png")
    if tracker is not None:
        run_id = state.get("report_run_id") or tracker.start("report", {"llmkit.kind": "report"})
        for name in ("report.md", "report.json", "report.png", "spec.yaml"):
            tracker.artifact(run_id, output / name, "report")
        tracker.finish(run_id)
        state["report_run_id"] = run_id
    return markdown


def run_command(args: argparse.Namespace) -> int:
    from .runner import STATE, ExperimentRunner, _write_state
    from .spec import load_experiment

    experiment = load_experiment(args.spec)
    output = Path(args.output or f"runs/experiments/{experiment.name}")
    runner = ExperimentRunner(experiment, output, args.tracking_uri)
    (output / "spec.yaml").write_text(Path(args.spec).read_text())
    state = runner.run(progress=not args.quiet)
    markdown = _write_report(experiment, output, state, runner.tracker)
    _write_state(output / STATE, state)
    print(markdown, f"report: {output / 'report.md'}, tracking: {runner.tracking_uri}", sep="\n")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from .runner import STATE
    from .spec import load_experiment

    experiment = load_experiment(args.spec)
    output = Path(args.output or f"runs/experiments/{experiment.name}")
    if not (output / STATE).is_file():
        raise LabError(f"{output} holds no experiment (no {STATE})")
    print(_write_report(experiment, output, json.loads((output / STATE).read_text())))
    return 0


def register_models(cli) -> None:
    models = cli.command(
        "registry", help="model versions and their phases: research → evaluation → deployment → maintenance"
    )
    _tracking(models)
    models.add_argument("--name", help="only this registered model")
    models.set_defaults(func=list_command)
    commands = models.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")
    promote = commands.add_parser("promote", help="move a version to the next phase")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("phase")
    _tracking(promote)
    promote.set_defaults(func=promote_command)
    gate = commands.add_parser("gate", help="run a release gate on a version and record the result")
    gate.add_argument("name")
    gate.add_argument("version")
    gate.add_argument("gates", metavar="GATES.yaml")
    gate.add_argument("--baseline", help="eval run directory or model (needed by no-regression rules)")
    gate.add_argument("--output", "-o", default="runs/gate", help="where models are evaluated (default runs/gate)")
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    _tracking(gate)
    gate.set_defaults(func=gate_command)
    register = commands.add_parser("register", help="register a trained run (`llmkit train` output) with a card")
    register.add_argument("run", metavar="RUN_DIR", help="a training output_dir (holds final/model)")
    register.add_argument("--name", required=True)
    _tracking(register)
    register.set_defaults(func=register_command)


def _registry(args: argparse.Namespace):
    from .registry import Registry
    from .tracking import default_tracking_uri

    return Registry(args.tracking_uri or default_tracking_uri())


def list_command(args: argparse.Namespace) -> int:
    versions = _registry(args).versions(args.name)
    table = Table("model", "version", "phase", "gate", "source")
    for v in versions:
        table.add_row(v.name, v.version, v.phase, v.gate or "—", v.source)
    console.print(table if versions else "no registered models")
    return 0


def promote_command(args: argparse.Namespace) -> int:
    info = _registry(args).promote(args.name, args.version, args.phase)
    console.print(f"{info.name} version {info.version}: {info.phase}")
    return 0


def gate_command(args: argparse.Namespace) -> int:
    """The version's model against the baseline under GATES.yaml; the result goes on the version and its card."""
    from llmkit.eval.cli.gate_command import run_gate

    registry = _registry(args)
    info = registry.version(args.name, args.version)
    summary = Path(args.output) / f"{args.name}-v{args.version}-gate.md"
    gate_args = argparse.Namespace(
        gates=args.gates,
        candidate=info.source,
        baseline=args.baseline,
        junit=args.junit,
        summary=str(summary),
        output=args.output,
        backend="reference",
        backend_option=[],
        device="auto",
    )
    code = run_gate(gate_args)
    registry.record_gate(args.name, args.version, code == 0, f"{args.gates} vs {args.baseline}")
    card = Path(info.source) / "MODEL_CARD.md"
    if card.is_file():
        text = card.read_text()
        head, _, rest = text.partition("## Gate results\n")
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        card.write_text(f"{head}## Gate results\n\n{summary.read_text()}{tail}")
    return code


def register_command(args: argparse.Namespace) -> int:
    import yaml

    from llmkit.train.metrics import read_metrics
    from llmkit.train.plotting import plot_runs

    from .registry import write_model_card

    run = Path(args.run)
    model_dir = run / "final" / "model"
    if not (model_dir / "config.json").is_file():
        raise LabError(f"{run} holds no trained model (no final/model/config.json)")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    metrics = read_metrics(run) if (run / "metrics.jsonl").is_file() else []
    curves = plot_runs([run], ["loss"], model_dir / "curves.png") if metrics else None
    write_model_card(model_dir, config=config, metrics=metrics, curves=curves)
    version = _registry(args).register(args.name, model_dir, None, f"registered from {run}")
    console.print(f"{args.name} version {version}: research ({model_dir / 'MODEL_CARD.md'})")
    return 0
