"""Guards in `llmkit serve` through a real uvicorn on loopback: a blocked input is a 400 naming the guard, a
blocked reply ends with finish_reason content_filter (whole and streamed, the hit never sent) while a concurrent
stream finishes unchanged, redaction across stream chunks, and every KV block back in the pool."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest
from test_server import LiveServer

from llmkit.core.guards import open_guard
from llmkit.core.guards.pii import regex_guard
from llmkit.core.sampling import SamplingParams
from llmkit.serve.engine import Engine
from llmkit.serve.outputs import SequenceDelta
from llmkit.serve.server.guards import ServerGuards, _ChoiceStream

MODEL = "tiny"
MAX_TOKENS = 32
BLOCKED_PROMPT, OTHER_PROMPT = "tell me a story", "count to ten"


def greedy_reply(engine: Engine, prompt: str) -> str:
    ids = engine.pretrained.chat_prompt([{"role": "user", "content": prompt}])
    out = engine.generate([ids], SamplingParams(temperature=0, max_tokens=MAX_TOKENS), progress=False)
    return out[0].completions[0].text


def late_hit(text: str, other: str) -> tuple[str, int]:
    """A 5-character piece that first appears late in `text` and nowhere in `other` (printable only)."""
    for start in range(len(text) - 5, 11, -1):
        piece = text[start : start + 5]
        if text.find(piece) == start and piece not in other and piece.isprintable() and "\ufffd" not in piece:
            return piece, start
    raise AssertionError(f"no usable piece in {text!r}")


@pytest.fixture(scope="module")
def guarded(tiny):
    engine = Engine(tiny, num_blocks=256, max_num_seqs=16)
    blocked_text, other_text = greedy_reply(engine, BLOCKED_PROMPT), greedy_reply(engine, OTHER_PROMPT)
    hit, start = late_hit(blocked_text, other_text)
    live = LiveServer(engine)
    live.server.guards = ServerGuards(
        [regex_guard(re.escape(hit), window=4), open_guard("pii:action=block,stages=input")]
    )
    yield live, blocked_text, other_text, hit, start
    live.stop()


def chat_body(prompt: str, **extra) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        **extra,
    }


def stream_chat(url: str, prompt: str, into: dict) -> None:
    text, finishes = "", []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat_body(prompt, stream=True), timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
                finishes.append(choice["finish_reason"])
    into[prompt] = (text, [f for f in finishes if f is not None])


def test_a_blocked_input_is_a_400_naming_the_guard(guarded):
    live = guarded[0]
    r = httpx.post(f"{live.url}/v1/chat/completions", json=chat_body("mail me at ana@example.org"), timeout=30)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "guard_blocked" and error["param"] == "messages" and "'pii'" in error["message"]
    r = httpx.post(
        f"{live.url}/v1/completions", json={"model": MODEL, "prompt": "call +1 415-555-0132", "max_tokens": 2}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "guard_blocked"
    live.wait_idle()


def test_a_blocked_reply_is_withheld_with_content_filter(guarded):
    live, _, other_text, _, _ = guarded
    body = httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(BLOCKED_PROMPT), timeout=60).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == ""
    other = httpx.post(f"{live.url}/v1/chat/completions", json=chat_body(OTHER_PROMPT), timeout=60).json()
    assert other["choices"][0]["message"]["content"] == other_text
    assert other["choices"][0]["finish_reason"] == "length"
    live.wait_idle()


def test_a_blocked_stream_ends_with_content_filter_and_a_concurrent_one_goes_on(guarded):
    live, blocked_text, other_text, hit, start = guarded
    results: dict = {}
    threads = [
        threading.Thread(target=stream_chat, args=(live.url, p, results)) for p in (BLOCKED_PROMPT, OTHER_PROMPT)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    sent, finishes = results[BLOCKED_PROMPT]
    assert finishes == ["content_filter"]
    assert hit not in sent and blocked_text.startswith(sent)
    assert len(sent) <= start  # nothing from the hit on went out; at most the window before it was held back
    assert results[OTHER_PROMPT] == (other_text, ["length"])
    live.wait_idle()  # the blocked stream was ended early: its request aborted, every block free


def test_a_redaction_split_across_chunks_goes_out_whole():
    stream = _ChoiceStream(ServerGuards([open_guard("pii")]))
    pieces = ["Hello, write to ana.", "gonz", "alez@exam", "ple.org and ", "then wait", "."]
    sent = [
        stream.push(SequenceDelta(0, [1], piece, "stop" if i == len(pieces) - 1 else None)).text
        for i, piece in enumerate(pieces)
    ]
    assert "".join(sent) == "Hello, write to [EMAIL] and then wait."
    assert not any("@" in s or "gonz" in s for s in sent)
    assert sent[0] == ""  # within the 64-character window: held back
