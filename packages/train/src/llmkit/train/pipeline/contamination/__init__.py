"""Contamination: eval items found in training data by 13-gram overlap and by semantic near-match."""

from .ngram_index import EvalNgramIndex
from .run import ContaminationChecker, ContaminationConfig, check_contamination, check_records
from .sources import EvalItem, load_eval_sources, load_registered, registered_datasets

__all__ = [
    "ContaminationChecker",
    "ContaminationConfig",
    "EvalItem",
    "EvalNgramIndex",
    "check_contamination",
    "check_records",
    "load_eval_sources",
    "load_registered",
    "registered_datasets",
]
