"""Constraints and preferences the user states in conversation: detected, promoted, superseded by corrections."""

from .extractor import ExtractedConstraint, ExtractedConstraints, LMConstraintExtractor
from .promotion import ConstraintDetector, detect_all, promote
from .record import STATE_KEY, StatedConstraint, content_words, read_record
from .rules import CORRECTION, DEFAULT_RULES, Detection, Rule, RuleDetector, sentences

__all__ = [
    "CORRECTION",
    "DEFAULT_RULES",
    "STATE_KEY",
    "ConstraintDetector",
    "Detection",
    "ExtractedConstraint",
    "ExtractedConstraints",
    "LMConstraintExtractor",
    "Rule",
    "RuleDetector",
    "StatedConstraint",
    "content_words",
    "detect_all",
    "promote",
    "read_record",
    "sentences",
]
