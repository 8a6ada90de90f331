"""The router over real `llmkit serve --role replica` processes on loopback: the openai SDK works
through it unchanged; prefix-sharing traffic reaches a higher prefix-cache hit rate with the
cache-aware policy than with round-robin (both measured here from the replicas' own counters); a
replica killed mid-run ends its in-flight stream with a clear error while requests that had not
started on it are retried on the other; replicas answer only the router. In process: the prefix
index and the choice of a replica."""

from __future__ import annotations

import os
import re
import signal
import threading

import httpx
import pytest
from live_servers import InProcessServer, free_port, start_cli, stop, wait_healthy

from llmkit.serve.router.app import create_router
from llmkit.serve.router.prefix_index import CHUNK_CHARS, PrefixIndex, chunk_hashes, prompt_text
from llmkit.serve.router.replicas import ReplicaPolicy

SECRET = "router-test-secret-" + os.urandom(8).hex()
SECRET_HEADER = {"x-llmkit-internal-secret": SECRET}
SYSTEM_PROMPTS = [
    f"You are assistant number {i}. " + "Answer briefly, cite the manual, and never invent facts. " * 4
    for i in range(8)
]
QUESTIONS = ["What is the capital?", "Count to three.", "Name a colour.", "Say hello."]


# --- in process -----------------------------------------------------------------------------------


def test_chunk_hashes_chain_like_kv_block_hashes():
    a = "x" * (3 * CHUNK_CHARS) + "tail"
    b = "x" * (2 * CHUNK_CHARS) + "y" * CHUNK_CHARS
    ha, hb = chunk_hashes(a), chunk_hashes(b)
    assert len(ha) == 3  # the partial tail is not hashed
    assert ha[:2] == hb[:2] and ha[2] != hb[2]
    shifted = chunk_hashes("z" + a)
    assert not set(shifted) & set(ha)  # a hash stands for its whole prefix, not for one chunk


def test_a_conversation_prefix_is_a_text_prefix():
    messages = [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}]
    longer = {"messages": [*messages, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]}
    assert prompt_text(longer).startswith(prompt_text({"messages": messages}))
    assert prompt_text({"prompt": "abc"}) == "abc"
    assert prompt_text({"prompt": [[1, 2], [3]]}) == "1 2"  # a batch routes by its first prompt


def test_choice_prefers_the_cached_replica_within_the_balance_slack():
    policy = ReplicaPolicy(["http://a", "http://b", "http://c"], balance_slack=2)
    a, b, c = policy.replicas
    hashes = chunk_hashes("p" * 10 * CHUNK_CHARS)
    b.index.insert(hashes[:8])
    a.outstanding, b.outstanding, c.outstanding = 1, 2, 0
    assert policy.choose(hashes, set()) is b  # 8/10 cached, 2 more in flight than the least loaded
    b.outstanding = 3
    assert policy.choose(hashes, set()) is c  # beyond the slack: the least loaded
    b.outstanding = 0
    assert policy.choose(chunk_hashes("q" * 10 * CHUNK_CHARS), set()) in (b, c)  # nothing cached: least loaded
    b.healthy = False
    assert policy.choose(hashes, set()) is c
    assert policy.choose(hashes, {c, a}) is None
    index = PrefixIndex(capacity=3)
    index.insert(hashes[:5])
    assert len(index) == 3 and index.match(hashes) == 0  # LRU forgot the first chunks


def test_round_robin_cycles_and_bad_settings_are_refused():
    policy = ReplicaPolicy(["http://a", "http://b"], strategy="round-robin")
    picks = [policy.choose([], set()).url for _ in range(4)]
    assert picks == ["http://a", "http://b", "http://a", "http://b"]
    with pytest.raises(ValueError, match="unknown routing strategy"):
        ReplicaPolicy(["http://a"], strategy="random")
    with pytest.raises(ValueError, match="twice"):
        ReplicaPolicy(["http://a", "http://a"])
    with pytest.raises(ValueError, match="at least one"):
        ReplicaPolicy([])


# --- real replicas ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def router_model_dir(tmp_path_factory):
    from llmkit.core.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("router-model"), max_position_embeddings=1024)


def start_replicas(model_dir, count: int, processes: list) -> list[str]:
    urls = []
    for _ in range(count):
        port = free_port()
        processes.append(
            start_cli(
                "serve",
                "--model",
                str(model_dir),
                "--role",
                "replica",
                "--port",
                str(port),
                "--kv-cache-memory",
                "16MiB",
                "--served-model-name",
                "m",
                secret=SECRET,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        wait_healthy(url, processes)
    return urls


@pytest.fixture(scope="module")
def replicas(router_model_dir):
    processes: list = []
    try:
        yield start_replicas(router_model_dir, 2, processes)
    finally:
        stop(processes)


def router(urls: list[str], **options) -> InProcessServer:
    return InProcessServer(create_router(ReplicaPolicy(urls, **options), internal_secret=SECRET))


def prefix_counters(urls: list[str]) -> tuple[float, float]:
    """(hit blocks, queried blocks) summed over the replicas' /metrics."""
    hits = queried = 0.0
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        hits += float(re.search(r"^llmkit_prefix_cache_hit_blocks_total(?:\{[^}]*\})? (\S+)", text, re.M).group(1))
        queried += float(
            re.search(r"^llmkit_prefix_cache_queried_blocks_total(?:\{[^}]*\})? (\S+)", text, re.M).group(1)
        )
    return hits, queried


def chat(url: str, system: str, question: str, **extra) -> httpx.Response:
    body = {
        "model": "m",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": 4,
        "temperature": 0,
        **extra,
    }
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def test_replicas_answer_only_the_router(replicas):
    direct = chat(replicas[0], "s", "q")
    assert direct.status_code == 401 and direct.json()["error"]["code"] == "invalid_internal_secret"
    assert httpx.get(f"{replicas[0]}/health", timeout=10).status_code == 200


def test_openai_sdk_through_the_router_equals_a_replica(replicas):
    openai = pytest.importorskip("openai")
    with router(replicas) as front:
        client = openai.OpenAI(base_url=f"{front.url}/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Say something."}]
        reply = client.chat.completions.create(model="m", messages=messages, max_tokens=8, temperature=0)
        streamed = client.chat.completions.create(
            model="m", messages=messages, max_tokens=8, temperature=0, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
        direct = httpx.post(
            f"{replicas[1]}/v1/chat/completions",
            json={"model": "m", "messages": messages, "max_tokens": 8, "temperature": 0},
            headers=SECRET_HEADER,
            timeout=60,
        ).json()
        assert reply.choices[0].message.content == text == direct["choices"][0]["message"]["content"]
        assert client.models.list().data
        bad = httpx.post(f"{front.url}/v1/chat/completions", content=b"{not json", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        invalid = chat(front.url, "s", "q", max_tokens=-1)  # the replica's own validation, relayed
        assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"


def hit_rate(replicas: list[str], systems: list[str], **options) -> float:
    """Prefix-cache hit rate of interleaved traffic: every system prompt with every question."""
    before = prefix_counters(replicas)
    with router(replicas, **options) as front:
        for question in QUESTIONS:
            for system in systems:
                assert chat(front.url, system, question).status_code == 200
    after = prefix_counters(replicas)
    return (after[0] - before[0]) / (after[1] - before[1])


def test_cache_aware_routing_beats_round_robin_on_shared_prefixes(replicas):
    # Three conversations over two replicas, so round-robin does not pin each one to a replica by chance.
    round_robin = hit_rate(replicas, SYSTEM_PROMPTS[:3], strategy="round-robin")
    cache_aware = hit_rate(replicas, SYSTEM_PROMPTS[3:6], strategy="cache-aware")
    print(f"prefix-cache hit rate: round-robin {round_robin:.2f}, cache-aware {cache_aware:.2f}")
    assert cache_aware > round_robin + 0.1


def test_a_killed_replica_fails_only_what_had_started(router_model_dir):
    processes: list = []
    try:
        urls = start_replicas(router_model_dir, 2, processes)
        with router(urls, strategy="round-robin", health_interval=60) as front:
            doomed = processes[0]
            started = threading.Event()
            stream_events: list[bytes] = []

            def long_stream():
                body = {"model": "m", "prompt": "once", "max_tokens": 900, "temperature": 0, "stream": True}
                body["ignore_eos"] = True
                with httpx.stream("POST", f"{front.url}/v1/completions", json=body, timeout=120) as response:
                    for chunk in response.iter_raw():
                        stream_events.append(chunk)
                        started.set()

            thread = threading.Thread(target=long_stream)
            thread.start()  # round-robin: the first request goes to the first replica
            assert started.wait(60)
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
            thread.join(60)
            assert b'"code":"replica_failed"' in b"".join(stream_events)
            # Requests that never reached the dead replica (connection refused) go to the live one.
            replies = [chat(front.url, "s", question) for question in QUESTIONS]
            assert [r.status_code for r in replies] == [200] * len(QUESTIONS)
            assert httpx.get(f"{front.url}/health", timeout=10).json()["replicas"] == {urls[0]: False, urls[1]: True}
    finally:
        stop(processes)


def test_router_command_refuses_bad_setups(monkeypatch, capsys):
    from llmkit.core.cli import main

    monkeypatch.setenv("LLMKIT_INTERNAL_SECRET", SECRET)
    for args, message in (
        ((), "--backend URL"),
        (("--backend", "http://a", "--prefill-url", "http://b"), "not both"),
        (("--prefill-url", "http://b"), "both --prefill-url and --decode-url"),
        (("--backend", "http://a", "--cache-threshold", "2"), "cache-threshold"),
        (("--backend", "http://a", "--backend", "http://a"), "twice"),
    ):
        assert main(["router", *args]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.delenv("LLMKIT_INTERNAL_SECRET")
    assert main(["router", "--backend", "http://a"]) == 2
    assert "shared secret" in capsys.readouterr().err
