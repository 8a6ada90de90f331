"""Few-shot examples chosen by a selector that a plugin registers (`llmkit_register_fewshot_selectors`):
llmkit-context registers `bm25` and `dense` (similarity to the query, optional MMR diversity, label balance,
ordering), so eval picks examples the way `llmkit.context.fewshot` does without importing it."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.errors import PluginError
from llmkit.core.plugins import registry

from .data import Sample
from .errors import EvalError

_selectors: dict[tuple, Any] = {}  # one selector (an index over the pool) per pool and settings
_lock = threading.Lock()


def selector_names() -> list[str]:
    return registry("fewshot_selectors").names()


def select_examples(
    name: str,
    options: Mapping[str, Any],
    query: str,
    pool: Sequence[Sample],
    pool_texts: Sequence[str],
    labels: Sequence[str],
    k: int,
    seed: int,
) -> list[Sample]:
    """`k` examples of `pool` for `query` by the registered selector `name`, in prompt order."""
    key = (name, json.dumps(dict(options), sort_keys=True, default=str), k, seed, tuple(s.id for s in pool))
    with _lock:
        selector = _selectors.get(key)
        if selector is None:
            try:
                factory = registry("fewshot_selectors").get(name)
            except PluginError as err:
                raise EvalError(f"fewshot_sampler {name!r}: {err} (built in: random, first)") from None
            try:
                selector = factory(list(pool_texts), k=k, seed=seed, labels=list(labels), **options)
            except TypeError as err:
                raise EvalError(f"fewshot_sampler {name!r}: bad fewshot_options {dict(options)}: {err}") from None
            _selectors[key] = selector
    indices = selector.select_indices(query, ())
    if len(indices) != k:
        raise EvalError(f"fewshot_sampler {name!r} chose {len(indices)} examples, {k} were asked for")
    return [pool[i] for i in indices]
