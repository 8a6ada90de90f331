"""The `"llmkit"` scaling extension through a real server on loopback: usage counts every sample's tokens,
the samples share the prompt's blocks, bad values are 400s naming the parameter."""

from __future__ import annotations

import httpx
import pytest
from test_server import MODEL, LiveServer

from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.verifiers import VerifierResult
from llmkit.serve.engine import Engine

QUESTION = [{"role": "user", "content": "Count the words in this rather long question, please: " + "word " * 8}]


class _Verifiers:
    calls = 0

    @hookimpl
    def llmkit_register_verifiers(self, register):
        def third_time_lucky(prompt, completion, reference):
            _Verifiers.calls += 1
            return VerifierResult.from_bool(_Verifiers.calls >= 3, f"attempt {_Verifiers.calls} was wrong")

        register("test_third_time_lucky", third_time_lucky)
        register("test_length", lambda p, c, r: VerifierResult(len(c) > 10, min(len(c), 100) / 100))


@pytest.fixture(scope="module")
def live(tiny):
    register_plugin(_Verifiers(), "test-scaling-server")
    server = LiveServer(Engine(tiny, num_blocks=512, max_num_seqs=16), max_waiting=64)
    yield server
    server.stop()
    unregister_plugin("test-scaling-server")


def post(live, path, **body):
    return httpx.post(f"{live.url}/v1/{path}", json={"model": MODEL, **body}, timeout=120)


SAMPLING = {"max_tokens": 5, "ignore_eos": True, "temperature": 1.0, "seed": 7}


def test_self_consistency_counts_every_sample_and_shares_the_prompt(live):
    reply = post(live, "chat/completions", messages=QUESTION, llmkit={"strategy": "self_consistency", "n": 6,
                 "answer": "exact"}, **SAMPLING)  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    report, usage = body["llmkit"], body["usage"]
    assert [s["completion_tokens"] for s in report["samples"]] == [5] * 6
    assert usage["completion_tokens"] == 30 and usage["total_tokens"] == usage["prompt_tokens"] + 30
    prompt = usage["prompt_tokens"]
    full = (prompt - 1) // 16 * 16
    assert full >= 32
    assert report["prompt_tokens_reused"] >= 5 * full  # five samples read the first one's blocks
    assert report["prompt_tokens_computed"] + report["prompt_tokens_reused"] == 6 * prompt
    chosen = report["samples"][report["chosen"]]
    assert body["choices"][0]["message"]["content"] == chosen["text"]
    assert report["votes"][chosen["answer"]] == max(report["votes"].values())
    live.wait_idle()


def test_best_of_n_by_a_verifier_on_completions(live):
    reply = post(live, "completions", prompt="Once upon a time", llmkit={"strategy": "best_of_n", "n": 4,
                 "verifier": "test_length"}, **SAMPLING)  # fmt: skip
    assert reply.status_code == 200, reply.text
    body = reply.json()
    scores = body["llmkit"]["scores"]
    assert body["llmkit"]["chosen"] == scores.index(max(scores))
    assert body["choices"][0]["text"] == body["llmkit"]["samples"][body["llmkit"]["chosen"]]["text"]
    assert body["usage"]["completion_tokens"] == 20
    live.wait_idle()


def test_verify_and_retry_counts_every_round(live):
    _Verifiers.calls = 0
    short = [{"role": "user", "content": "2+3?"}]  # the conversation grows by a reply and an error each round
    reply = post(live, "chat/completions", messages=short, llmkit={"strategy": "verify_and_retry", "n": 5,
                 "verifier": "test_third_time_lucky"}, **SAMPLING)  # fmt: skip
    assert reply.status_code == 200, reply.text
    report = reply.json()["llmkit"]
    assert report["passed"] is True and report["rounds"] == 3 and report["chosen"] == 2
    assert reply.json()["usage"]["completion_tokens"] == 15
    live.wait_idle()


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"llmkit": {"strategy": "vote_harder"}}, "llmkit.strategy", "unknown strategy"),
        ({"llmkit": {"strategy": "self_consistency", "n": 0}}, "llmkit.n", "must be in [1, 64]"),
        ({"llmkit": {"strategy": "self_consistency", "n": 65}}, "llmkit.n", "must be in [1, 64]"),
        ({"llmkit": {"strategy": "self_consistency", "n": "8"}}, "llmkit.n", "integer"),
        ({"llmkit": {"strategy": "best_of_n", "verifier": "nope"}}, "llmkit.verifier", "unknown verifier 'nope'"),
        ({"llmkit": {"strategy": "best_of_n"}}, "llmkit.verifier", "needs llmkit.verifier"),
        ({"llmkit": {"strategy": "self_consistency", "answer": "poem"}}, "llmkit.answer", "unknown answer kind"),
        ({"llmkit": {"strategy": "self_consistency", "colour": 1}}, "llmkit.colour", "Extra inputs"),
        ({"llmkit": {"strategy": "self_consistency"}, "stream": True}, "stream", "stream cannot be combined"),
        ({"llmkit": {"strategy": "self_consistency"}, "n": 2}, "n", "llmkit.n"),
    ],
)
def test_bad_values_are_400s(live, extra, param, words):
    reply = post(live, "chat/completions", messages=QUESTION, max_tokens=3, **extra)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_verify_and_retry_needs_chat(live):
    reply = post(live, "completions", prompt="hi", llmkit={"strategy": "verify_and_retry", "verifier": "test_length"})
    assert reply.status_code == 400 and "use chat" in reply.json()["error"]["message"]
    live.wait_idle()
