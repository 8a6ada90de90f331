"""Explicit truncation: each over-long record is an error, dropped or cut, and every case is counted and reported."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import DataError
from .encoding import PromptCompletion, TokenizedSequence


@dataclasses.dataclass
class DataReport:
    """What tokenization and truncation did to a data set (printed and written to data_report.json)."""

    name: str
    records: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_targets: int = 0
    longest: int = 0
    tokens: int = 0
    target_tokens: int = 0
    target_tokens_cut: int = 0
    first_over_long: str = ""

    def summary(self) -> str:
        parts = [
            f"{self.name}: {self.kept}/{self.records} records, {self.tokens} tokens ({self.target_tokens} trained)"
        ]
        if self.truncated:
            parts.append(f"{self.truncated} truncated ({self.target_tokens_cut} trained tokens cut)")
        if self.dropped_too_long:
            parts.append(f"{self.dropped_too_long} dropped as too long")
        if self.dropped_no_targets:
            parts.append(f"{self.dropped_no_targets} dropped with no trained token")
        return "; ".join(parts)

    def write(self, directory: Path) -> None:
        path = directory / "data_report.json"
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing[self.name] = dataclasses.asdict(self)
        path.write_text(json.dumps(existing, indent=2))


class Truncation:
    """Applies the `truncation` option (error, drop, truncate) at `max_length` and records what happened."""

    def __init__(self, policy: str, max_length: int, report: DataReport):
        self.policy, self.max_length, self.report = policy, max_length, report
        self.over_long: list[tuple[str, int]] = []

    def _over(self, where: str, length: int) -> bool:
        """Count an over-long record; True when the policy drops it (or collects it for the error)."""
        self.report.longest = max(self.report.longest, length)
        if length <= self.max_length:
            return False
        self.over_long.append((where, length))
        if not self.report.first_over_long:
            self.report.first_over_long = where
        if self.policy == "truncate":
            self.report.truncated += 1
            return False
        self.report.dropped_too_long += 1
        return True

    def _keep(self, tokens: int, targets: int) -> None:
        self.report.kept += 1
        self.report.tokens += tokens
        self.report.target_tokens += targets

    def sequence(self, seq: TokenizedSequence, where: str) -> TokenizedSequence | None:
        """An SFT sequence, cut on the right when truncating; None when dropped."""
        self.report.records += 1
        if self._over(where, len(seq)):
            return None
        if len(seq) > self.max_length:
            kept = TokenizedSequence(seq.ids[: self.max_length], seq.targets[: self.max_length])
            self.report.target_tokens_cut += seq.num_targets - kept.num_targets
            seq = kept
        if seq.num_targets == 0 or not any(seq.targets[1:]):
            self.report.dropped_no_targets += 1
            return None
        self._keep(len(seq), sum(seq.targets[1:]))
        return seq

    def pair(self, prompt: list[int], completions: list[list[int]], where: str) -> list[PromptCompletion] | None:
        """A prompt with its completions (chosen, rejected) sharing one length budget: the prompt is cut on
        the left first (its end matters most), then completions on the right; None when dropped."""
        self.report.records += 1
        longest = max(len(c) for c in completions)
        if self._over(where, len(prompt) + longest):
            return None
        if len(prompt) + longest > self.max_length:
            keep_prompt = max(1, self.max_length - longest)
            prompt = prompt[len(prompt) - keep_prompt :]
            room = self.max_length - len(prompt)
            cut = [c[:room] for c in completions]
            self.report.target_tokens_cut += sum(len(c) - len(k) for c, k in zip(completions, cut, strict=True))
            completions = cut
        pairs = [PromptCompletion(list(prompt), list(c)) for c in completions]
        self._keep(sum(len(p.prompt) + len(p.completion) for p in pairs), sum(len(p.completion) for p in pairs))
        return pairs

    def prompt(self, prompt: list[int], budget: int, where: str) -> list[int] | None:
        """An RL prompt that must leave `max_length - budget` tokens for generation; cut on the left."""
        self.report.records += 1
        limit = self.max_length - budget
        if limit < 1:
            raise DataError(f"max_length ({self.max_length}) leaves no room for a prompt beside {budget} new tokens")
        self.report.longest = max(self.report.longest, len(prompt))
        if len(prompt) > limit:
            self.over_long.append((where, len(prompt)))
            self.report.first_over_long = self.report.first_over_long or where
            if self.policy != "truncate":
                self.report.dropped_too_long += 1
                return None
            self.report.truncated += 1
            prompt = prompt[len(prompt) - limit :]
        self._keep(len(prompt), 0)
        return prompt

    def finish(self) -> DataReport:
        """Raise for truncation=error when any record was too long; otherwise the report."""
        if self.policy == "error" and self.over_long:
            where, length = self.over_long[0]
            raise DataError(
                f"{len(self.over_long)} of {self.report.records} records in {self.report.name} are longer than "
                f"max_length={self.max_length} (longest {max(n for _, n in self.over_long)} tokens; first at "
                f"{where}, {length} tokens). Set truncation to 'drop' or 'truncate', or raise max_length"
            )
        if self.report.kept == 0:
            raise DataError(f"no record of {self.report.name} is left to train on ({self.report.summary()})")
        return self.report
