"""Eval's few-shot examples from a registered selector (`llmkit_register_fewshot_selectors`): a test plugin's,
and llmkit-context's bm25 where it is installed."""

from __future__ import annotations

import pytest

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.eval.data import Sample
from llmkit.eval.errors import EvalError
from llmkit.eval.prompting import PromptFormat

POOL = [
    Sample("p0", {"question": "the cat sat on the mat"}, "cat"),
    Sample("p1", {"question": "stocks fell sharply on monday"}, "finance"),
    Sample("p2", {"question": "the dog sat on the rug"}, "dog"),
    Sample("p3", {"question": "bonds rallied after the report"}, "finance"),
    Sample("p4", {"question": "a cat slept on the mat"}, "cat"),
]


class SharedWords:
    """Orders the pool by words shared with the query (ties: pool order); `reverse` puts the best last."""

    def __init__(self, pool, k, seed, labels, reverse=False):
        self.pool, self.k, self.reverse, self.labels, self.seed = pool, k, reverse, labels, seed

    def select_indices(self, query, exclude):
        words = set(query.split())
        ranked = sorted(range(len(self.pool)), key=lambda i: -len(words & set(self.pool[i].split())))
        chosen = [i for i in ranked if i not in exclude][: self.k]
        return chosen[::-1] if self.reverse else chosen


class _Selectors:
    def __init__(self):
        self.made = []

    @hookimpl
    def llmkit_register_fewshot_selectors(self, register):
        def factory(pool, *, k, seed, labels, reverse=False):
            selector = SharedWords(pool, k, seed, labels, reverse)
            self.made.append(selector)
            return selector

        register("test_shared_words", factory)
        register("test_too_few", lambda pool, *, k, seed, labels: SharedWords(pool, k - 1, seed, labels))


@pytest.fixture
def selectors():
    plugin = _Selectors()
    register_plugin(plugin, "test-fewshot-selectors")
    yield plugin
    unregister_plugin("test-fewshot-selectors")


def test_a_registered_selector_picks_the_examples(selectors):
    fmt = PromptFormat(template="{{ question }}", fewshot=2, fewshot_sampler="test_shared_words")
    query = Sample("q", {"question": "the cat sat on a mat"}, "cat")
    assert [s.id for s in fmt.examples(query, POOL)] == ["p0", "p4"]
    flipped = PromptFormat(
        template="{{ question }}", fewshot=2, fewshot_sampler="test_shared_words", fewshot_options={"reverse": True}
    )
    assert [s.id for s in flipped.examples(query, POOL)] == ["p4", "p0"]
    # a pool item asking for its own examples never gets itself; the selector saw the pool without it
    assert "p0" not in [s.id for s in fmt.examples(POOL[0], POOL)]
    selector = selectors.made[-1]
    assert len(selector.pool) == 4 and selector.labels == ["finance", "dog", "finance", "cat"]
    assert fmt.raw(query, POOL).startswith("the cat sat on the mat cat\n\na cat slept on the mat cat\n\n")


def test_selector_errors_are_clear(selectors):
    query = Sample("q", {"question": "the cat"}, "cat")
    with pytest.raises(EvalError, match="'nope'.*built in: random, first"):
        PromptFormat(fewshot=1, fewshot_sampler="nope").examples(query, POOL)
    with pytest.raises(EvalError, match="bad fewshot_options"):
        PromptFormat(fewshot=1, fewshot_sampler="test_shared_words", fewshot_options={"revers": 1}).examples(
            query, POOL
        )
    with pytest.raises(EvalError, match="chose 1 examples, 2 were asked for"):
        PromptFormat(fewshot=2, fewshot_sampler="test_too_few").examples(query, POOL)


def test_context_bm25_puts_the_near_duplicate_next_to_the_query():
    pytest.importorskip("llmkit.context", reason="llmkit-context registers the bm25 selector")
    fmt = PromptFormat(template="{{ question }}", fewshot=2, fewshot_sampler="bm25", fewshot_seed=7)
    query = Sample("q", {"question": "stocks fell on monday after the report"}, "finance")
    picked = [s.id for s in fmt.examples(query, POOL)]
    assert picked[-1] == "p1" and set(picked) == {"p1", "p3"}  # the most similar last, by default
    assert [s.id for s in fmt.examples(query, POOL)] == picked  # reproducible
    balanced = PromptFormat(
        template="{{ question }}",
        fewshot=2,
        fewshot_sampler="bm25",
        fewshot_options={"balance_labels": True, "order": "most_similar_first"},
    )
    ids = [s.id for s in balanced.examples(query, POOL)]
    assert ids[0] == "p1" and ids[1] != "p3"  # one example per label at most: the second finance item is skipped
