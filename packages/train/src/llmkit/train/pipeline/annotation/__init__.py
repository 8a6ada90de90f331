"""Annotation quality: agreement (Cohen, Fleiss, Krippendorff), honeypots, Bradley-Terry preference scores.

Cohen's and Fleiss' kappa live in `llmkit.core.agreement`, shared with llmkit-eval."""

from llmkit.core.agreement import category_counts, category_order, cohen_kappa, fleiss_kappa

from .bradley_terry import BradleyTerryScores, bradley_terry, pairs_from_ranking
from .honeypots import HoneypotResult, honeypot_accuracy, wilson_interval
from .krippendorff import krippendorff_alpha
from .report import agreement_report, load_annotations, reliability_matrix

__all__ = [
    "BradleyTerryScores",
    "HoneypotResult",
    "agreement_report",
    "bradley_terry",
    "category_counts",
    "category_order",
    "cohen_kappa",
    "fleiss_kappa",
    "honeypot_accuracy",
    "krippendorff_alpha",
    "load_annotations",
    "pairs_from_ranking",
    "reliability_matrix",
    "wilson_interval",
]
