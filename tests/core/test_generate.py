"""The reference generate() on a tiny random model: cache consistency, batching, stops, seeds, errors."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import ContextLengthError, InvalidParameterError, SamplingParams, generate, stream_generate
from llmkit.core.models.attention import DenseCausalAttention

PROMPTS = [[5, 9, 14, 200, 31], [7, 8], [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110], [42]]


def full_forward_logprobs(model, ids):
    with torch.inference_mode():
        hidden = model(torch.tensor(ids), torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
        return model.compute_logits(hidden).log_softmax(-1)


def test_cached_decode_equals_full_forward(tiny):
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True, logprobs=True)
    for prompt, output in zip(PROMPTS, generate(tiny.model, tiny.tokenizer, PROMPTS, params), strict=True):
        completion = output.completions[0]
        ids = prompt + completion.token_ids
        reference = full_forward_logprobs(tiny.model, ids)
        for step, token in enumerate(completion.token_ids):
            row = reference[len(prompt) - 1 + step]
            assert token == int(row.argmax())
            assert abs(completion.logprobs[step] - float(row[token])) < 1e-4


def test_batched_generation_equals_one_prompt_at_a_time(tiny):
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    together = generate(tiny.model, tiny.tokenizer, PROMPTS, params)
    for prompt, output in zip(PROMPTS, together, strict=True):
        alone = generate(tiny.model, tiny.tokenizer, [prompt], params)[0]
        assert output.completions[0].token_ids == alone.completions[0].token_ids
        assert output.prompt_token_ids == prompt


def test_seeded_sampling_does_not_depend_on_the_batch(tiny):
    mine = SamplingParams(temperature=1.0, top_p=0.9, seed=77, max_tokens=20, ignore_eos=True)
    other = SamplingParams(temperature=0.7, seed=5, max_tokens=12, ignore_eos=True)
    alone = generate(tiny.model, tiny.tokenizer, [PROMPTS[0]], mine)[0].completions[0].token_ids
    mixed = generate(tiny.model, tiny.tokenizer, [PROMPTS[2], PROMPTS[0], PROMPTS[1]], [other, mine, other])
    assert mixed[1].completions[0].token_ids == alone


def test_n_samples_are_distinct_and_reproducible(tiny):
    params = SamplingParams(temperature=1.0, n=3, seed=11, max_tokens=12, ignore_eos=True)
    first = generate(tiny.model, tiny.tokenizer, [PROMPTS[0]], params)[0]
    again = generate(tiny.model, tiny.tokenizer, [PROMPTS[0]], params)[0]
    runs = [c.token_ids for c in first.completions]
    assert len(runs) == 3 and len({tuple(r) for r in runs}) == 3
    assert runs == [c.token_ids for c in again.completions]


def test_max_tokens_finishes_with_length(tiny):
    out = generate(
        tiny.model, tiny.tokenizer, [PROMPTS[1]], SamplingParams(temperature=0, max_tokens=5, ignore_eos=True)
    )
    completion = out[0].completions[0]
    assert len(completion.token_ids) == 5 and completion.finish_reason == "length"


def test_stop_token_ends_the_sequence(tiny):
    greedy = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    first_token = generate(tiny.model, tiny.tokenizer, [PROMPTS[0]], greedy)[0].completions[0].token_ids[2]
    stopped = generate(tiny.model, tiny.tokenizer, [PROMPTS[0]], greedy.replace(stop_token_ids=(first_token,)))[0]
    completion = stopped.completions[0]
    assert completion.finish_reason == "stop" and completion.token_ids[-1] == first_token
    assert len(completion.token_ids) <= 3


def test_stop_string_truncates_text_and_stream(tiny):
    base = SamplingParams(temperature=0, max_tokens=40, ignore_eos=True)
    text = generate(tiny.model, tiny.tokenizer, [PROMPTS[2]], base)[0].completions[0].text
    assert len(text) > 12
    stop = text[8:11]
    params = base.replace(stop=(stop,))
    completion = generate(tiny.model, tiny.tokenizer, [PROMPTS[2]], params)[0].completions[0]
    assert completion.finish_reason == "stop"
    assert completion.text == text[: text.index(stop)]
    streamed = "".join(e.text for e in stream_generate(tiny.model, tiny.tokenizer, [PROMPTS[2]], params))
    assert streamed == completion.text


def test_stream_holds_back_a_partial_stop_string(tiny):
    from llmkit.core.stopping import OutputStream

    tok = tiny.tokenizer
    ids = tok.encode("The capital of France")
    stream = OutputStream(tok, SamplingParams(stop=("France!",), max_tokens=50), max_new_tokens=50)
    deltas = [stream.append(i) for i in ids]
    assert "".join(deltas) + stream.text[stream.emitted :] == "The capital of France"
    assert not "".join(deltas).endswith("France"), "a possible stop-string prefix was streamed early"


def test_streaming_events_concatenate_to_the_completion(tiny):
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=30, ignore_eos=True, n=2)
    final = generate(tiny.model, tiny.tokenizer, PROMPTS[:2], params)
    pieces: dict = {}
    for event in stream_generate(tiny.model, tiny.tokenizer, PROMPTS[:2], params):
        pieces.setdefault((event.prompt_index, event.sample_index), []).append(event)
    for i, output in enumerate(final):
        for j, completion in enumerate(output.completions):
            events = pieces[(i, j)]
            assert [e.token_id for e in events] == completion.token_ids
            assert "".join(e.text for e in events) == completion.text
            assert events[-1].finish_reason == completion.finish_reason


def test_generation_stops_at_the_context_limit(tiny):
    limit = tiny.config.max_position_embeddings
    prompt = list(range(3, 3 + limit - 4))
    out = generate(tiny.model, tiny.tokenizer, [prompt], SamplingParams(temperature=0, max_tokens=100, ignore_eos=True))
    completion = out[0].completions[0]
    assert len(completion.token_ids) == 4 and completion.finish_reason == "length"


def test_prompt_longer_than_the_context_is_refused(tiny):
    too_long = [5] * tiny.config.max_position_embeddings
    with pytest.raises(ContextLengthError, match="context holds 256"):
        generate(tiny.model, tiny.tokenizer, [too_long])


def test_bad_prompt_arguments(tiny):
    with pytest.raises(InvalidParameterError, match="prompt 0 is empty"):
        generate(tiny.model, tiny.tokenizer, [[]])
    with pytest.raises(InvalidParameterError, match="2 prompts but 1"):
        generate(tiny.model, tiny.tokenizer, [[1], [2]], [SamplingParams()])


def test_text_prompts_are_tokenized(tiny):
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    from_text = generate(tiny.model, tiny.tokenizer, ["The capital"], params)[0]
    from_ids = generate(tiny.model, tiny.tokenizer, [tiny.tokenizer.encode("The capital")], params)[0]
    assert from_text.prompt_token_ids == from_ids.prompt_token_ids
    assert from_text.completions[0].token_ids == from_ids.completions[0].token_ids
