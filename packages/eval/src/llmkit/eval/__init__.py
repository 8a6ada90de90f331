"""llmkit.eval: offline benchmarks, pass@k, self-consistency, LLM-as-judge, probes and regression reports."""

from llmkit.core.agreement import cohen_kappa

from .cache import ResponseCache
from .catalog import builtin_registry, load_task
from .client import ModelClient
from .compare import compare_runs, regression_markdown
from .data import Dataset, Sample
from .errors import EvalError
from .judge import PairwiseJudge, RubricJudge
from .prompting import PromptFormat
from .runner import RunOptions, run_tasks
from .scoring.passk import pass_at_k
from .scoring.scorers import MatchScorer, VerifierScorer
from .stats import Estimate, bootstrap, mcnemar, paired_bootstrap
from .tasks import Task, TaskRegistry

__all__ = [
    "Dataset",
    "Estimate",
    "EvalError",
    "MatchScorer",
    "ModelClient",
    "PairwiseJudge",
    "PromptFormat",
    "ResponseCache",
    "RubricJudge",
    "RunOptions",
    "Sample",
    "Task",
    "TaskRegistry",
    "VerifierScorer",
    "bootstrap",
    "builtin_registry",
    "cohen_kappa",
    "compare_runs",
    "load_task",
    "mcnemar",
    "paired_bootstrap",
    "pass_at_k",
    "regression_markdown",
    "run_tasks",
]
