"""llmkit-eval's lost-in-the-middle probe through ContextWindow: retrieval + U-shaped placement put the
needle at the edge of the context whatever its depth in the source."""

from __future__ import annotations

import re

from llmkit.context import ContextWindow, RetrievedChunk
from llmkit.context.retrieval import BM25Retriever, Chunk
from llmkit.eval.probes import lost_in_the_middle


def test_the_needle_lands_first_in_the_retrieved_block_at_every_depth(tiny_backend):
    dataset = lost_in_the_middle(facts=4, sentences=40)
    depths = set()
    for sample in dataset.samples:
        prompt = sample.fields["question"]
        notes, question = prompt.split("\n\nQuestion: ")
        sentences = re.split(r"(?<=\.) ", notes.split("\n\n", 1)[1])
        chunks = [Chunk(s, "notes", i) for i, s in enumerate(sentences)]
        hits = BM25Retriever(chunks).search(question, k=5)
        window = ContextWindow(tiny_backend, budget=100_000)
        window.set_retrieved([RetrievedChunk(chunks[i].text, f"notes#{i}", score) for i, score in hits])
        tail = window.render(question).messages[-1]["content"]
        block = tail.split("# Retrieved context")[1]
        first = block.split("</data>")[0]
        assert sample.target in first, (sample.id, first)
        depths.add(sample.fields["depth"])
    assert depths == {0.0, 0.25, 0.5, 0.75, 1.0}
