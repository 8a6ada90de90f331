"""Tensor parallelism on CPU with gloo over loopback: rank 0 in this process, workers spawned.

The tiny model (4 heads, 2 KV heads) split over 2 ranks gives the greedy ids of one rank, with
prefix caching and preemption; each rank holds about half the weights; a bad size is a clear
error; a worker that dies or hangs fails the in-flight request within the collective timeout.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from llmkit.core import InvalidParameterError, SamplingParams
from llmkit.serve.engine import Engine
from llmkit.serve.parallel import TensorParallelError

GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
SHARED = "The quick brown fox jumps over the lazy dog. The capital of France is Paris. "
# A budget of 24 blocks of 4 tokens: the batch below needs more at once, so the scheduler preempts.
SMALL_CACHE = dict(block_size=4, num_blocks=24, max_num_seqs=8)


def _batch() -> list[str | list[int]]:
    rng = random.Random(0)
    return [SHARED + "What is", SHARED + "def reverse(s):", "1 + 1 = 2", [rng.randrange(3, 384) for _ in range(30)]]


def _run(engine: Engine) -> list[list[int]]:
    """A warm-up request (its blocks become the cached prefix), then the batch that shares it."""
    first = engine.generate([SHARED], GREEDY, progress=False)
    rest = engine.generate(_batch(), GREEDY, progress=False)
    return [o.completions[0].token_ids for o in first + rest]


@pytest.fixture(scope="module")
def one_rank_ids(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), **SMALL_CACHE)
    ids = _run(engine)
    stats = engine.stats()
    assert stats.preemptions > 0 and stats.prefix_cache_hit_blocks > 0, stats  # the run covers both
    return ids


def test_two_ranks_give_the_greedy_ids_of_one_with_prefix_caching_and_preemption(tiny_model_dir, one_rank_ids):
    engine = Engine(str(tiny_model_dir), tensor_parallel_size=2, **SMALL_CACHE)
    try:
        tp = engine.tensor_parallel
        assert engine.pretrained.config.num_heads == 2 and engine.pretrained.config.num_kv_heads == 1
        assert engine.runner.caches[0].key.shape[1] == 1  # each rank caches 1 of the 2 KV heads
        print(f"\nweight bytes per rank {tp.weight_bytes} of {tp.full_weight_bytes} (1/2 = {tp.full_weight_bytes / 2})")
        for part in tp.weight_bytes:  # ~1/2 each; the replicated norms and RoPE tables are the excess
            assert tp.full_weight_bytes / 2 <= part < tp.full_weight_bytes / 2 * 1.02
        ids = _run(engine)
        stats = engine.stats()
        assert stats.preemptions > 0 and stats.prefix_cache_hit_blocks > 0, stats
        assert ids == one_rank_ids
        assert "native_forward_reason" in engine.describe()
    finally:
        engine.close()
    for process in tp.processes:
        assert process.exitcode == 0  # the stop command ended the worker cleanly


def test_two_ranks_run_int8_activations_on_q8_0_weights_with_the_greedy_ids_of_one(tiny_model_dir):
    """The engine's default activations (int8) repack Q8_0/Q4_0/Q4_1 weights on their first matmul; a worker
    that made its shard in inference mode died there ("Inference tensors do not track version counter")."""
    options = dict(quantize="q8_0", activations="int8", num_blocks=64)
    prompts = _batch()[2:]
    one = Engine(str(tiny_model_dir), **options).generate(prompts, GREEDY, progress=False)
    engine = Engine(str(tiny_model_dir), tensor_parallel_size=2, **options)
    try:
        assert engine.pretrained.model.layers[0].mlp.down_proj.local.stored.format.name == "q8_0"
        two = engine.generate(prompts, GREEDY, progress=False)
    finally:
        engine.close()
    assert [o.completions[0].finish_reason for o in two] == ["length"] * len(prompts)
    assert [o.completions[0].token_ids for o in two] == [o.completions[0].token_ids for o in one]


def test_a_size_that_does_not_divide_names_the_sizes_that_work(tiny_model_dir):
    with pytest.raises(InvalidParameterError, match=r"tensor_parallel_size 3 does not divide .*sizes that work: 1, 2$"):
        Engine(str(tiny_model_dir), tensor_parallel_size=3, num_blocks=16)


def test_unsupported_combinations_are_refused_before_loading(tiny, tiny_model_dir):
    from llmkit.serve.speculative import SpeculativeConfig

    with pytest.raises(InvalidParameterError, match="speculative decoding"):
        Engine(str(tiny_model_dir), tensor_parallel_size=2, speculative=SpeculativeConfig(method="ngram"))
    with pytest.raises(InvalidParameterError, match="a loaded Pretrained"):
        Engine(tiny, tensor_parallel_size=2)


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_worker_that_dies_or_hangs_fails_the_request_within_the_timeout(tiny_model_dir, how):
    timeout = 5.0
    engine = Engine(str(tiny_model_dir), tensor_parallel_size=2, tensor_parallel_timeout=timeout, num_blocks=64)
    worker = engine.tensor_parallel.processes[0]
    try:
        request_id = engine.add_request("The quick brown fox", SamplingParams(temperature=0, max_tokens=200))
        for _ in range(3):
            assert not any(o.error for o in engine.step())
        os.kill(worker.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        started, outputs = time.monotonic(), []
        while engine.has_unfinished():
            outputs += engine.step()
        elapsed = time.monotonic() - started
        print(f"\nworker {how}: request failed after {elapsed:.2f} s (timeout {timeout} s)")
        assert elapsed < timeout + 5
        [failed] = [o for o in outputs if o.request_id == request_id and o.finished]
        assert "TensorParallelError" in failed.error and "rank" in failed.error, failed.error
        if how == "killed":
            assert "rank 1 exited with code -9" in failed.error
        assert not worker.is_alive()  # the engine stopped what was left of the worker
        with pytest.raises(TensorParallelError, match="stopped after a tensor-parallel failure"):
            engine.add_request("again")
    finally:
        engine.close()


def test_three_ranks_on_the_default_model_give_the_golden_ids(smollm2_path, golden):
    """SmolLM2-135M (9 heads, 3 KV heads, Q4_1 blocks) over 3 ranks: the golden greedy ids (float32
    activations, as the golden run) on the first golden prompt's first 16 tokens."""
    case, tokens = golden["cases"][0], 16
    params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True)
    engine = Engine(str(smollm2_path), tensor_parallel_size=3, activations="float32", kv_cache_memory="4MiB")
    try:
        tp = engine.tensor_parallel
        print(f"\nSmolLM2 weight bytes per rank {tp.weight_bytes} of {tp.full_weight_bytes}")
        for part in tp.weight_bytes:
            assert tp.full_weight_bytes / 3 <= part < tp.full_weight_bytes / 3 * 1.02
        [three] = engine.generate([case["ids_in"]], params, progress=False)
    finally:
        engine.close()
    assert three.completions[0].token_ids == case["ids_out"][:tokens], case["prompt"]


def test_two_ranks_on_the_default_model_is_a_clear_error(smollm2_path):
    with pytest.raises(InvalidParameterError, match=r"9 heads, 3 KV heads .*sizes that work: 1, 3$"):
        Engine(str(smollm2_path), tensor_parallel_size=2)


def _worker_pids(server_pid: int) -> list[int]:
    """The server's spawned tensor-parallel workers (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]


def test_llmkit_serve_exits_non_zero_when_a_rank_dies(tiny_model_dir):
    import httpx
    from live_servers import free_port, start_cli, stop, wait_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_cli(
        "serve", "-m", str(tiny_model_dir), "--port", str(port), "--embedding-model", "none", "--served-model-name", "tiny",
        "--kv-cache-memory", "8MiB", "--tensor-parallel-size", "2", "--tp-timeout", "5",
    )  # fmt: skip
    try:
        wait_healthy(url, [server])
        reply = httpx.post(
            f"{url}/v1/completions", json={"model": "tiny", "prompt": "The quick", "max_tokens": 4}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        [worker] = _worker_pids(server.pid)
        os.kill(worker, signal.SIGKILL)
        assert server.wait(timeout=30) == 1
        assert "stopped: tensor-parallel rank 1 exited with code -9" in server.stderr.read()
    finally:
        stop([server])
