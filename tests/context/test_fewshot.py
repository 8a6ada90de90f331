"""Few-shot selection: similarity, diversity (MMR), label balance, token budget, ordering, seeds; and on the
default model, selection by similarity beats random selection on a task with planted near-duplicate neighbours."""

from __future__ import annotations

import math
import random

import pytest

from llmkit.context.errors import ContextError
from llmkit.context.fewshot import Example, FewShotSelector, FewShotSettings
from llmkit.context.retrieval.dense import HashingEmbedder

POOL = [
    Example("the cat sat on the mat", "animal", "animal"),
    Example("a cat sat on a warm mat", "animal", "animal"),
    Example("the cat sat on the mat", "animal", "animal"),
    Example("dogs chase a cat around the yard", "animal", "animal"),
    Example("stock prices fell on monday", "finance", "finance"),
    Example("the central bank raised rates", "finance", "finance"),
    Example("a cat video about stock prices", "finance", "finance"),
    Example("rain is expected this weekend", "weather", "weather"),
]


def words(text: str) -> int:
    return len(text.split())


def test_similarity_picks_the_nearest_and_puts_the_best_last():
    selector = FewShotSelector(POOL, FewShotSettings(k=2, method="bm25"))
    chosen = selector.select_indices("did the cat sit on the mat")
    assert set(chosen) == {0, 2}  # the two exact matches
    first = FewShotSelector(POOL, FewShotSettings(k=3, method="bm25", order="most_similar_first"))
    assert first.select_indices("central bank rates")[0] == 5
    last = FewShotSelector(POOL, FewShotSettings(k=3, method="bm25", order="most_similar_last"))
    assert last.select_indices("central bank rates")[-1] == 5


def test_mmr_trades_a_duplicate_for_a_different_example():
    plain = FewShotSelector(POOL, FewShotSettings(k=2, method="bm25", order="most_similar_first"))
    diverse = FewShotSelector(POOL, FewShotSettings(k=2, method="bm25", mmr_lambda=0.3, order="most_similar_first"))
    query = "the cat sat on the mat"
    assert sorted(plain.select_indices(query)) == [0, 2]  # the same text twice
    picked = diverse.select_indices(query)
    assert picked[0] in (0, 2) and picked[1] not in (0, 2)


def test_label_balance_caps_each_label():
    selector = FewShotSelector(POOL, FewShotSettings(k=4, method="bm25", balance_labels=True))
    labels = [POOL[i].label for i in selector.select_indices("a cat on the mat and stock prices")]
    assert len(labels) == 4 and max(labels.count(label) for label in set(labels)) <= math.ceil(4 / 3)


def test_token_budget_is_never_exceeded_and_skips_to_what_fits():
    settings = FewShotSettings(k=4, method="bm25", token_budget=15, template="{input} => {output}")
    selector = FewShotSelector(POOL, settings, count_tokens=words)
    chosen = selector.select("did the cat sit on the mat")
    assert sum(words(e.render(settings.template)) for e in chosen) <= 15 and len(chosen) == 2
    assert chosen[0].output == "weather"  # the other 8-word matches do not fit; the 7-word one does
    with pytest.raises(ContextError, match="needs count_tokens"):
        FewShotSelector(POOL, settings)


def test_random_selection_is_reproducible_by_seed_and_excludes_the_query():
    pick = lambda seed: FewShotSelector(POOL, FewShotSettings(k=3, method="random", seed=seed)).select_indices(  # noqa: E731
        "q", exclude=[4]
    )
    assert pick(1) == pick(1) and 4 not in pick(1)
    assert len({tuple(pick(s)) for s in range(6)}) > 1
    dense = FewShotSelector(
        POOL, FewShotSettings(k=2, method="dense", order="random", seed=3), embedder=HashingEmbedder()
    )
    assert dense.select_indices("the cat sat on the mat") == dense.select_indices("the cat sat on the mat")


def test_bad_settings_are_clear_errors():
    with pytest.raises(ContextError, match="mmr_lambda"):
        FewShotSettings(mmr_lambda=1.5)
    with pytest.raises(ContextError, match="k must be"):
        FewShotSettings(k=-1)


def planted_task(count: int, seed: int = 0) -> tuple[list[Example], list[tuple[str, str]]]:
    """Made-up names with made-up codes: a pool of facts and, per fact, a reworded question whose answer only
    its near-duplicate neighbour in the pool holds."""
    rng = random.Random(seed)
    syllables = ["zor", "vath", "plin", "kett", "mur", "dax", "quel", "bri", "nox", "tal", "fen", "rud"]
    pool, queries = [], []
    for _ in range(count):
        name = " ".join("".join(rng.sample(syllables, 2)).capitalize() for _ in range(2))
        code = str(rng.randint(100, 999))
        pool.append(Example(f"Q: What is the code of {name}?", f"A: {code}"))
        queries.append((f"Q: Tell me the code of {name}?", code))
    return pool, queries


def test_similar_examples_beat_random_ones_on_planted_neighbours(smollm2):
    """Paired on the same 24 questions with 3 examples each: similarity (BM25) against random (seeded)."""
    from llmkit.core import SamplingParams, generate

    pool, queries = planted_task(24)

    def correct(method: str) -> list[bool]:
        selector = FewShotSelector(pool, FewShotSettings(k=3, method=method, seed=5))
        prompts = [f"{selector.render(q, separator=chr(10))}\n{q}\nA:" for q, _ in queries]
        outputs = generate(smollm2.model, smollm2.tokenizer, prompts, SamplingParams(temperature=0, max_tokens=5))
        return [code in out.completions[0].text for out, (_, code) in zip(outputs, queries, strict=True)]

    similar, randomly = correct("bm25"), correct("random")
    only_similar = sum(s and not r for s, r in zip(similar, randomly, strict=True))
    only_random = sum(r and not s for s, r in zip(similar, randomly, strict=True))
    # exact sign test on the discordant pairs: P(only_similar or more | no difference)
    discordant = only_similar + only_random
    p = sum(math.comb(discordant, i) for i in range(only_similar, discordant + 1)) / 2**discordant
    assert sum(similar) > sum(randomly) and p < 0.01, (sum(similar), sum(randomly), only_similar, only_random)
