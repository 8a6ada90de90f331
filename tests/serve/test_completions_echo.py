"""/v1/completions with `echo`: prompt log-likelihoods as lm-evaluation-harness's `local-completions`
asks for them (echo, logprobs=N, max_tokens 0 or 1, token-id prompts), checked against a dense float32
forward of the same tiny model; streaming with echo; and the bad values of every new parameter."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from test_server import MODEL, LiveServer

from llmkit.core.models.attention import DenseCausalAttention
from llmkit.serve.engine import Engine
from llmkit.serve.server.responses import token_text

TOP = 5


@pytest.fixture(scope="module")
def live(tiny):
    # A small step budget splits the longer prompts over several prefill chunks.
    server = LiveServer(Engine(tiny, num_blocks=256, max_num_batched_tokens=16))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prompts(tiny):
    texts = [
        "The quick brown fox jumps over the lazy dog. What is the capital of France?",
        "1 + 1 = 2, 2 + 3 = 5",
        "def reverse(s):\n    return s[::-1]\n",
    ]
    return [tiny.tokenizer.encode(t) for t in texts]


def reference_logprobs(tiny, ids: list[int]) -> torch.Tensor:
    """[len(ids) - 1, V] float32 log-softmax of a dense forward: row i predicts token i + 1."""
    model = tiny.model
    with torch.inference_mode():
        hidden = model(torch.tensor(ids), torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
        return model.compute_logits(hidden[:-1]).float().log_softmax(-1)


def post(live, body: dict) -> httpx.Response:
    return httpx.post(f"{live.url}/v1/completions", json={"model": MODEL, **body}, timeout=60)


def test_echo_scores_token_id_prompts_like_the_reference(live, tiny, prompts):
    body = {"prompt": prompts, "echo": True, "logprobs": TOP, "max_tokens": 0, "temperature": 0}
    reply = post(live, body)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert [c["index"] for c in result["choices"]] == [0, 1, 2]
    assert result["usage"]["prompt_tokens"] == sum(map(len, prompts))
    assert result["usage"]["completion_tokens"] == 0
    decode = tiny.tokenizer.decode
    for choice, ids in zip(result["choices"], prompts, strict=True):
        assert choice["text"] == decode(ids, skip_special_tokens=False)
        assert choice["finish_reason"] == "length"
        logprobs = choice["logprobs"]
        assert logprobs["tokens"] == [token_text(tiny.tokenizer, t) for t in ids]
        assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
        assert logprobs["text_offset"][0] == 0 and logprobs["text_offset"] == sorted(logprobs["text_offset"])
        reference = reference_logprobs(tiny, ids)
        chosen = reference.gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
        assert len(logprobs["token_logprobs"]) == len(ids)
        assert torch.allclose(torch.tensor(logprobs["token_logprobs"][1:]), chosen, atol=1e-4)
        for position, top in enumerate(logprobs["top_logprobs"][1:], start=1):
            values = list(top.values())
            assert len(top) == TOP and values == sorted(values, reverse=True)
            expected = reference[position - 1].topk(TOP)
            assert torch.allclose(torch.tensor(values), expected.values, atol=1e-4)
            assert list(top) == [token_text(tiny.tokenizer, t) for t in expected.indices.tolist()]
            if ids[position] in expected.indices.tolist():  # the actual token ranks within the top N
                assert top[logprobs["tokens"][position]] == logprobs["token_logprobs"][position]


def test_what_lm_eval_sends_gives_what_it_parses(live, tiny, prompts):
    """lm-eval 0.4.x: echo, logprobs=1, max_tokens=1, temperature 0; it reads entries [ctxlen:-1] and calls a
    continuation greedy when each token's logprob is the top one."""
    body = {"prompt": prompts, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0, "seed": 1234}
    result = post(live, body).json()
    for choice, ids in zip(result["choices"], prompts, strict=True):
        logprobs = choice["logprobs"]
        assert len(logprobs["tokens"]) == len(ids) + 1  # the prompt, then the one generated token
        reference = reference_logprobs(tiny, ids)
        greedy = reference.argmax(-1).tolist()
        for position in range(1, len(ids)):
            (best,) = logprobs["top_logprobs"][position].values()
            assert (logprobs["token_logprobs"][position] == best) == (greedy[position - 1] == ids[position])
        assert choice["text"].startswith(tiny.tokenizer.decode(ids, skip_special_tokens=False))


def test_echo_with_a_completion_is_the_prompt_then_the_plain_completion(live, tiny):
    prompt = "What is the capital of France?"
    plain = post(live, {"prompt": prompt, "logprobs": 2, "max_tokens": 4, "temperature": 0, "ignore_eos": True})
    echoed = post(
        live, {"prompt": prompt, "logprobs": 2, "max_tokens": 4, "temperature": 0, "ignore_eos": True, "echo": True}
    )
    plain, echoed = plain.json()["choices"][0], echoed.json()["choices"][0]
    assert echoed["text"] == prompt + plain["text"]
    count = len(tiny.tokenizer.encode(prompt))
    mine, theirs = echoed["logprobs"], plain["logprobs"]
    assert mine["tokens"] == mine["tokens"][:count] + theirs["tokens"]
    assert mine["token_logprobs"][count:] == theirs["token_logprobs"]
    assert mine["top_logprobs"][count:] == theirs["top_logprobs"]
    assert mine["text_offset"][count:] == [len(prompt) + offset for offset in theirs["text_offset"]]


def test_text_offsets_point_into_the_echoed_text(live, tiny):
    """Each token's offset is where its text starts in `text`; a token inside a character split over several
    tokens points at that character's start."""
    prompt = "Héllo wörld! 日本語 🙂 and the quick brown fox"
    ids = tiny.tokenizer.encode(prompt)
    pieces = [tiny.tokenizer.decode([t], skip_special_tokens=False) for t in ids]
    assert any("\ufffd" in p for p in pieces)  # some characters are split over tokens
    body = {"prompt": prompt, "echo": True, "logprobs": 1, "max_tokens": 2, "ignore_eos": True}
    choice = post(live, body).json()["choices"][0]
    text, offsets = choice["text"], choice["logprobs"]["text_offset"]
    assert text.startswith(prompt) and len(offsets) == len(ids) + 2
    assert offsets == sorted(offsets) and offsets[len(ids)] == len(prompt)  # the completion follows the prompt
    for offset, piece in zip(offsets, pieces, strict=False):
        if "\ufffd" in piece:
            assert ord(text[offset]) > 127  # the start of the multi-byte character it is part of
        else:
            assert text[offset : offset + len(piece)] == piece


def test_echo_without_logprobs_returns_the_prompt_text(live):
    choice = post(live, {"prompt": ["1 + 1 =", "The quick"], "echo": True, "max_tokens": 0}).json()["choices"]
    assert [c["text"] for c in choice] == ["1 + 1 =", "The quick"]
    assert all(c["logprobs"] is None for c in choice)


def stream_choices(live, body: dict) -> dict[int, dict]:
    """Stream `body`; per choice index, the text joined and the logprobs lists concatenated."""
    merged: dict[int, dict] = {}
    with httpx.stream("POST", f"{live.url}/v1/completions", json={"model": MODEL, **body, "stream": True}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:])["choices"]:
                entry = merged.setdefault(choice["index"], {"text": "", "logprobs": {}, "finish_reason": None})
                entry["text"] += choice["text"]
                entry["finish_reason"] = choice["finish_reason"] or entry["finish_reason"]
                for key, values in (choice["logprobs"] or {}).items():
                    entry["logprobs"].setdefault(key, []).extend(values or [])
    return merged


@pytest.mark.parametrize("max_tokens", [0, 3])
def test_streaming_with_echo_matches_the_full_response(live, prompts, max_tokens):
    body = {"prompt": prompts[:2], "echo": True, "logprobs": 2, "max_tokens": max_tokens, "temperature": 0}
    full = post(live, body).json()["choices"]
    streamed = stream_choices(live, body)
    assert sorted(streamed) == [0, 1]
    for choice in full:
        mine = streamed[choice["index"]]
        assert mine["text"] == choice["text"] and mine["finish_reason"] == choice["finish_reason"]
        expected = {k: [x for x in v if x is not None] for k, v in choice["logprobs"].items()}
        assert mine["logprobs"]["tokens"] == expected["tokens"]
        # The two runs batch differently (one request alone, or beside the other): logprobs agree to float32
        # rounding, not bit for bit (5e-7 apart in one CI run).
        streamed_logprobs = [x for x in mine["logprobs"]["token_logprobs"] if x is not None]
        assert streamed_logprobs == pytest.approx(expected["token_logprobs"], abs=1e-4)
        streamed_top = [x for x in mine["logprobs"]["top_logprobs"] if x is not None]
        assert [list(t) for t in streamed_top] == [list(t) for t in expected["top_logprobs"]]
        for got, want in zip(streamed_top, expected["top_logprobs"], strict=True):
            assert list(got.values()) == pytest.approx(list(want.values()), abs=1e-4)


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"max_tokens": 0}, "max_tokens", "only with echo"),
        ({"max_tokens": 0, "stream": True}, "max_tokens", "only with echo"),
        ({"max_tokens": -1, "echo": True}, "max_tokens", "greater than or equal to 0"),
        ({"max_tokens": 1.5, "echo": True}, "max_tokens", "integer"),
        ({"logprobs": 21, "echo": True, "max_tokens": 0}, "logprobs", "less than or equal to 20"),
        ({"logprobs": -1, "echo": True, "max_tokens": 0}, "logprobs", "greater than or equal to 0"),
        ({"logprobs": "5", "echo": True, "max_tokens": 0}, "logprobs", "integer"),
        ({"echo": "yes", "max_tokens": 0}, "echo", "boolean"),
        ({"echo": 1, "max_tokens": 0}, "echo", "boolean"),
        ({"echo": None, "max_tokens": 0}, "echo", "boolean"),
    ],
)
def test_bad_echo_parameters_get_openai_style_errors(live, extra, param, words):
    reply = post(live, {"prompt": [[5, 6, 7]], **extra})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == "invalid_value"
    assert words in error["message"]
    live.wait_idle()
