"""Per-sequence output state: detokenized text, stop conditions and stream-safe deltas.

Shared by the reference `generate()` and the serving engine so both stop the same way.
"""

from __future__ import annotations

from .sampling.params import SamplingParams
from .tokenizer import Tokenizer


class OutputStream:
    """Accumulates one sequence's tokens; reports text deltas and why it finished.

    A stop string ends the text before it; text that might be the start of a stop
    string is held back from deltas until it is known not to be one.
    """

    def __init__(self, tokenizer: Tokenizer, params: SamplingParams, max_new_tokens: int):
        self.params = params
        self.max_new_tokens = max_new_tokens
        self.stop_ids = set(params.stop_token_ids)
        if not params.ignore_eos:
            self.stop_ids.update(tokenizer.eos_token_ids)
        self.detokenizer = tokenizer.detokenizer(params.skip_special_tokens)
        self.token_ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.finish_reason: str | None = None

    def append(self, token_id: int) -> str:
        """Add a generated token; return the new text safe to show (possibly '')."""
        self.token_ids.append(token_id)
        if token_id in self.stop_ids:
            self.finish_reason = "stop"
        else:
            self.text += self.detokenizer.push(token_id)
            if self.params.stop and self._cut_at_stop_string():
                self.finish_reason = "stop"
        if self.finish_reason is None and len(self.token_ids) >= self.max_new_tokens:
            self.finish_reason = "length"
        visible = len(self.text) if self.finish_reason else len(self.text) - self._held_back()
        delta = self.text[self.emitted : visible]
        self.emitted = max(self.emitted, visible)
        return delta

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def _cut_at_stop_string(self) -> bool:
        longest = max(len(s) for s in self.params.stop)
        window_start = max(0, self.emitted - longest)
        hits = [i for s in self.params.stop if (i := self.text.find(s, window_start)) >= 0]
        if not hits:
            return False
        self.text = self.text[: min(hits)]
        return True

    def _held_back(self) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop string."""
        best = 0
        for stop in self.params.stop:
            for k in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:k]):
                    best = k
                    break
        return best
