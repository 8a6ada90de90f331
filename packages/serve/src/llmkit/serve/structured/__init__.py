"""Grammar-constrained decoding in the engine: per-sequence matchers, masks overlapped with the forward,
jump-forward over forced tokens, masked draft verification, and background compilation."""

from .manager import GrammarManager, SequenceGrammar

__all__ = ["GrammarManager", "SequenceGrammar"]
