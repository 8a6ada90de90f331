"""LLM-as-judge with bias controls: position swap, absolute rubrics, several judges, calibration, length bias."""

from .agreement import calibration, judge_agreement, length_bias
from .pairwise import PairItem, PairwiseJudge, PairwiseJudgment, parse_verdict, resolve_swap, summarize_pairwise
from .rubric import RubricJudge, parse_score

__all__ = [
    "PairItem",
    "PairwiseJudge",
    "PairwiseJudgment",
    "RubricJudge",
    "calibration",
    "judge_agreement",
    "length_bias",
    "parse_score",
    "parse_verdict",
    "resolve_swap",
    "summarize_pairwise",
]
