"""ContextWindow against llmkit-serve's engine: a cache-friendly layout earns prefix-cache hits a naive one does not."""

from __future__ import annotations

import pytest

from llmkit.context import ContextWindow, RetrievedChunk
from llmkit.context.render import render_retrieved, render_state
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams
from llmkit.core.testing import write_tiny_model

SYSTEM = "You answer questions about the fox. " * 3
DOCUMENT = "The quick brown fox jumps over the lazy dog. " * 12


@pytest.fixture(scope="module")
def engine_backend(tmp_path_factory):
    model = write_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_position_embeddings=4096)
    return lambda: open_backend("engine", model=str(model), kv_cache_memory="64MiB", block_size=4)


def session(backend, layout: str, turns: int = 8):
    params = SamplingParams(temperature=0.0, max_tokens=4)
    window = ContextWindow(backend, budget=3500)
    window.system = SYSTEM
    window.add_document(DOCUMENT, "fox.md")
    history, hashes = [], set()
    for turn in range(turns):
        chunks = [RetrievedChunk(f"fact {turn}: the fox ate {turn} apples", "facts.md")]
        window.state.set("turn", turn)
        question = f"question {turn}: how many apples?"
        if layout == "context_window":
            window.set_retrieved(chunks)
            rendered = window.render(question)
            messages = rendered.messages
            hashes.add(rendered.prefix_hash)
        else:  # rebuild everything: the changing parts lead the system message
            system = "\n\n".join([render_state(window.state.render()), render_retrieved(chunks, [0]), SYSTEM, DOCUMENT])
            messages = [{"role": "system", "content": system}, *history, {"role": "user", "content": question}]
        reply = backend.chat([messages], params)[0].choices[0].text
        window.add_message("user", question)
        window.add_message("assistant", reply)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    return backend.engine.stats(), hashes


def test_context_window_layout_hits_the_prefix_cache_and_the_naive_layout_does_not(engine_backend):
    window_stats, hashes = session(engine_backend(), "context_window")
    naive_stats, _ = session(engine_backend(), "naive")
    assert len(hashes) == 1  # the static prefix never changed
    print(
        f"hit rate: ContextWindow {window_stats.prefix_cache_hit_rate:.3f}, naive {naive_stats.prefix_cache_hit_rate:.3f}"
    )
    assert window_stats.prefix_cache_hit_rate > 0.5  # the first call has nothing cached: 8 calls cap it near 0.6
    assert naive_stats.prefix_cache_hit_rate < 0.15
    assert window_stats.prefix_cache_hit_rate > naive_stats.prefix_cache_hit_rate + 0.4
