"""Red teaming (`llmkit redteam`): attack generators over written seeds, run against any backend, judged by the
seed's check and by guards, reported per category with Wilson and bootstrap CIs; resumable. docs/safety.md."""

from .attacks import Attack, AttackContext, AttackRegistry, builtin_registry, load_registry, plan_attacks
from .harness import RunSettings, conversation, load_plan, read_results, run_attacks
from .report import rate, summarize, wilson_interval, write_report
from .scoring import check_reply, guard_hits, score_transcript
from .seeds import Seed, load_seeds

__all__ = [
    "Attack",
    "AttackContext",
    "AttackRegistry",
    "RunSettings",
    "Seed",
    "builtin_registry",
    "check_reply",
    "conversation",
    "guard_hits",
    "load_plan",
    "load_registry",
    "load_seeds",
    "plan_attacks",
    "rate",
    "read_results",
    "run_attacks",
    "score_transcript",
    "summarize",
    "wilson_interval",
    "write_report",
]
