"""`Request`: one client request — its prompt, its n sequences, and its timing."""

from __future__ import annotations

import concurrent.futures
import dataclasses

from .outputs import RequestTiming
from .sequence import Sequence


@dataclasses.dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]
    sequences: list[Sequence]
    timing: RequestTiming
    inconclusive_failures: int = 0  # failed steps it took part in without a solo run (see failure_isolation)
    grammar_future: concurrent.futures.Future | None = None  # its grammar's compilation, while WAITING_FOR_GRAMMAR

    @property
    def finished(self) -> bool:
        return all(s.is_finished for s in self.sequences)
