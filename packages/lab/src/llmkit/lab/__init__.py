"""llmkit-lab: controlled ablations tracked in MLflow, their report, model cards and versions with phases."""

from .errors import LabError
from .registry import PHASES, Registry, write_model_card
from .report import build_report, report_markdown
from .runner import run_experiment
from .spec import load_experiment, parse_experiment
from .tracking import default_tracking_uri

__all__ = [
    "PHASES",
    "LabError",
    "Registry",
    "build_report",
    "default_tracking_uri",
    "load_experiment",
    "parse_experiment",
    "report_markdown",
    "run_experiment",
    "write_model_card",
]
