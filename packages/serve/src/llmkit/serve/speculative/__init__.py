"""Speculative decoding: cheap proposers draft tokens, one target forward verifies them all."""

from .proposers import DraftModelProposer, EarlyExitProposer, NgramProposer, Proposal, Proposer
from .speculator import SpeculativeConfig, Speculator

__all__ = [
    "DraftModelProposer",
    "EarlyExitProposer",
    "NgramProposer",
    "Proposal",
    "Proposer",
    "SpeculativeConfig",
    "Speculator",
]
