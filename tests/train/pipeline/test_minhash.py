"""MinHash: signatures equal datasketch's, estimates agree with exact Jaccard, LSH parameters and n-gram hashes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from llmkit.train.pipeline.dedup.lsh import BandIndex, band_keys, candidate_probability, optimal_bands, recall_bands
from llmkit.train.pipeline.dedup.minhash import MinHasher, estimated_jaccard, exact_jaccard, shingle_hash32
from llmkit.train.pipeline.text import batch_ngram_hashes, ngram_hash_reference, ngram_hashes, normalize_text, words

from .corpus import edited, vocabulary

datasketch = pytest.importorskip("datasketch")


def _shingle_tuples(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))] if tokens else []


def test_signatures_equal_datasketch_affine32():
    rng = random.Random(1)
    vocab = vocabulary(500, rng)
    documents = [rng.choices(vocab, k=rng.randint(0, 60)) for _ in range(40)] + [["solo"]]
    hasher = MinHasher(num_perm=64, ngram=3, seed=7)
    ours = hasher.signatures(documents)
    for tokens, signature in zip(documents, ours, strict=True):
        reference = datasketch.MinHash(num_perm=64, seed=7, hashfunc=shingle_hash32)
        reference.update_batch(_shingle_tuples(tokens, 3))
        assert np.array_equal(reference.hashvalues, signature)


def test_estimates_agree_with_exact_jaccard():
    """128 permutations: standard error sqrt(J(1-J)/128) <= 0.044; every pair within 0.15, mean error < 0.03."""
    rng = random.Random(2)
    vocab = vocabulary(800, rng)
    hasher = MinHasher(num_perm=128, ngram=3)
    errors = []
    for _ in range(200):
        base = " ".join(rng.choices(vocab, k=60))
        other = edited(base, rng.randint(0, 30), vocab, rng)
        first, second = words(base), words(other)
        exact = exact_jaccard(set(_shingle_tuples(first, 3)), set(_shingle_tuples(second, 3)))
        signatures = hasher.signatures([first, second])
        errors.append(abs(float(estimated_jaccard(signatures[0], signatures[1:])[0]) - exact))
    assert max(errors) < 0.15
    assert float(np.mean(errors)) < 0.03


def test_numpy_ngram_hashes_equal_the_python_reference():
    tokens = words("The quick, brown fox jumps over the lazy dog; the END.")
    assert tokens[-1] == "end"
    for n in (1, 3, 13):
        expected = [ngram_hash_reference(g) for g in _shingle_tuples(tokens, n)]
        assert ngram_hashes(tokens, n).tolist() == expected


def test_batch_ngram_hashes_equal_per_document_hashes():
    documents = [words("one two three four five"), [], ["solo"], words("a b"), words("x y z w")]
    hashes, owners = batch_ngram_hashes(documents, 3)
    for number, tokens in enumerate(documents):
        assert sorted(hashes[owners == number].tolist()) == sorted(ngram_hashes(tokens, 3).tolist())


def test_normalization_ignores_case_punctuation_and_spacing():
    assert normalize_text("Hello,   WORLD!\n") == normalize_text("hello world") == "hello world"


def test_optimal_bands_favour_recall_at_the_threshold():
    bands, rows = optimal_bands(0.7, 128)
    assert (bands, rows) == (20, 6) and bands * rows <= 128

    def candidate(s: float) -> float:  # probability that two documents of Jaccard s share a band
        return 1 - (1 - s**rows) ** bands

    assert candidate(0.7) > 0.9 and candidate(0.8) > 0.99  # few duplicates missed before verification
    assert candidate(0.2) < 0.002  # unrelated documents are rarely even compared
    assert optimal_bands(0.9, 128)[1] > rows  # a stricter threshold: more rows per band
    assert optimal_bands(0.7, 128, false_negative_weight=0.5) == (14, 9)  # datasketch's equal weights


def test_recall_bands_make_pairs_at_the_threshold_candidates():
    """Exact verification's banding: a pair at the threshold shares a band with probability >= 0.995, with
    as many rows a band as allows it (one more row would fall short)."""
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = recall_bands(threshold, 128)
        assert bands * rows <= 128 and candidate_probability(threshold, bands, rows) >= 0.995
        assert candidate_probability(threshold, 128 // (rows + 1), rows + 1) < 0.995
    assert recall_bands(0.8, 128) == (21, 6) and recall_bands(0.7, 128) == (32, 4)
    assert candidate_probability(0.8, *optimal_bands(0.8, 128)) < 0.9  # the estimate's banding misses more


def test_band_index_finds_recent_and_merged_rows():
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, size=(10, 16), dtype=np.uint32)
    keys = band_keys(signatures, 4, 4)
    index = BandIndex(4, merge_every=3)
    for row in range(10):
        index.insert(keys[row], row)
    index.merge()
    assert index.lookup_merged(keys).tolist() == [[r] * 4 for r in range(10)]
    probe = keys[5].copy()
    probe[1:] ^= np.uint64(1)  # only band 0 still matches
    assert index.lookup_merged(probe[None, :]).tolist() == [[5, -1, -1, -1]]
