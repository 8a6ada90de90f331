"""AI feedback: SL-CAI critique-and-revise SFT data and RLAIF preference labels that survive a position swap."""

from .constitution import Constitution, Principle, default_constitution, load_constitution
from .critique import CritiqueRound, RevisedExample, critique_and_revise
from .preference_labels import PreferenceItem, PreferenceLabel, label_preferences, parse_choice, resolve_swap

__all__ = [
    "Constitution",
    "CritiqueRound",
    "PreferenceItem",
    "PreferenceLabel",
    "Principle",
    "RevisedExample",
    "critique_and_revise",
    "default_constitution",
    "label_preferences",
    "load_constitution",
    "parse_choice",
    "resolve_swap",
]
