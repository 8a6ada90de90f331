"""`Sample` (one evaluation item) and `Dataset` (samples plus provenance)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Sample:
    """One item: `fields` feed the prompt template, `target` is the gold answer, `choices` the options (MC)."""

    id: str
    fields: Mapping[str, Any]
    target: Any
    choices: tuple[str, ...] = ()


@dataclasses.dataclass
class Dataset:
    """Samples in a fixed order, with `provenance` recorded in every result file."""

    name: str
    samples: list[Sample]
    provenance: dict[str, Any]
    fewshot_pool: Sequence[Sample] | None = None  # few-shot examples; None draws from `samples`

    def __len__(self) -> int:
        return len(self.samples)

    def head(self, limit: int | None) -> Dataset:
        """The first `limit` samples (all when None), provenance noting the cut."""
        if limit is None or limit >= len(self.samples):
            return self
        provenance = {**self.provenance, "limit": limit}
        return Dataset(self.name, self.samples[:limit], provenance, self.fewshot_pool or self.samples)


def sample_from_record(
    record: Mapping[str, Any], index: int, id_field: str | None, target_field: str | None, choices_field: str | None
) -> Sample:
    """A `Sample` from a flat record (JSONL/CSV row, hub example) by field names."""
    sample_id = str(record[id_field]) if id_field and id_field in record else str(index)
    target = record.get(target_field) if target_field else None
    choices = tuple(str(c) for c in record.get(choices_field) or ()) if choices_field else ()
    return Sample(sample_id, dict(record), target, choices)
