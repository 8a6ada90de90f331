"""Memory: working (the ContextWindow), session notes and long-term SQLite storage, recalled only when relevant."""

from .levels import Memory, SessionMemory
from .long_term import LongTermMemory, MemoryHit

__all__ = ["LongTermMemory", "Memory", "MemoryHit", "SessionMemory"]
