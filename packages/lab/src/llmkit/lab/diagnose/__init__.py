"""`llmkit diagnose`: which of the four layers (prompt/context, system design, capability, training) a set of
failing cases lives in, decided by real runs of interventions on a backend."""

from .cases import ContextGrowth, FailingCase, load_agent_run_case, load_jsonl_cases, load_session_case
from .execute import Outcome, is_right, run_interventions
from .interventions import INTERVENTIONS, Intervention, Settings
from .report import diagnose, print_report
from .verdict import LAYERS, case_layer, wilson_interval

__all__ = [
    "INTERVENTIONS",
    "LAYERS",
    "ContextGrowth",
    "FailingCase",
    "Intervention",
    "Outcome",
    "Settings",
    "case_layer",
    "diagnose",
    "is_right",
    "load_agent_run_case",
    "load_jsonl_cases",
    "load_session_case",
    "print_report",
    "run_interventions",
    "wilson_interval",
]
