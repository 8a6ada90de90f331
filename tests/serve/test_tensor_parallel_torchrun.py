"""Tensor parallelism across "machines" with torchrun: two torchrun invocations on loopback
(--nnodes 2, one process each, c10d rendezvous) run `llmkit serve --tensor-parallel-size 2` on the
tiny random model; rank 0 serves HTTP and its greedy output equals one rank's; killing rank 1 ends
both torchrun invocations non-zero, rank 0 within the collective timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmkit.core import SamplingParams
from llmkit.serve.engine import Engine

TIMEOUT_S = 5.0
PROMPTS = [[5, 17, 99, 230, 41, 8, 77], [300, 12, 12, 150]]


def _torchrun(rendezvous_port: int, node_rank: int, *serve_args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
        f"--node-rank={node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{rendezvous_port}",
        "--rdzv-id=llmkit-tp-test", "--max-restarts=0", "--monitor-interval=0.5",
        "-m", "llmkit.core.cli", "serve", *serve_args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )


def _rank_pid(torchrun_pids: list[int], rank: int) -> int:
    """The pid of the torchrun worker with RANK=rank (a child of one of the torchrun agents)."""
    for agent in torchrun_pids:
        for child in Path(f"/proc/{agent}/task/{agent}/children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(child)
    raise AssertionError(f"no torchrun worker with RANK={rank} under {torchrun_pids}")


def test_two_torchrun_nodes_serve_the_greedy_output_of_one_rank_and_a_killed_rank_ends_them(tiny_model_dir):
    from live_servers import free_port, stop, wait_healthy

    greedy = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    one_rank = [o.completions[0].text for o in Engine(str(tiny_model_dir)).generate(PROMPTS, greedy, progress=False)]
    http_port, rendezvous_port = free_port(), free_port()
    url = f"http://127.0.0.1:{http_port}"
    serve = (
        "-m", str(tiny_model_dir), "--port", str(http_port), "--embedding-model", "none", "--served-model-name", "tiny",
        "--kv-cache-memory", "8MiB", "--tensor-parallel-size", "2", "--tp-timeout", str(TIMEOUT_S),
    )  # fmt: skip
    nodes = [_torchrun(rendezvous_port, rank, *serve) for rank in (0, 1)]
    try:
        wait_healthy(url, nodes)
        reply = httpx.post(
            f"{url}/v1/completions",
            json={"model": "tiny", "prompt": PROMPTS, "max_tokens": 16, "temperature": 0, "ignore_eos": True},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        texts = [c["text"] for c in sorted(reply.json()["choices"], key=lambda c: c["index"])]
        assert texts == one_rank
        os.kill(_rank_pid([n.pid for n in nodes], 1), signal.SIGKILL)
        killed = time.monotonic()
        returncodes = [node.wait(timeout=60) for node in nodes]
        elapsed = time.monotonic() - killed
        errors = [node.stderr.read() for node in nodes]
        print(f"\ntorchrun exit codes {returncodes} {elapsed:.1f} s after rank 1 was killed (timeout {TIMEOUT_S} s)")
        assert all(code != 0 for code in returncodes), [e[-2000:] for e in errors]
        # Node 0 ends either by llmkit's heartbeat watchdog or, when torchrun's agents notice the dead worker first,
        # by torchrun tearing down the rendezvous (a race between the two; both end it non-zero in time).
        watchdog = "llmkit serve: stopped: tensor-parallel rank 1 sent no heartbeat" in errors[0]
        agent = "Rendezvous" in errors[0] and "Error" in errors[0]
        assert watchdog or agent, errors[0][-2000:]
        assert elapsed < TIMEOUT_S + 20  # the timeout, then uvicorn's shutdown and two interpreters' exits
    finally:
        stop(nodes)


@pytest.fixture
def store_port() -> Iterator[int]:
    """A TCP store this process hosts (as torchrun's agent would), for a group to connect to."""
    import datetime

    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=5), wait_for_workers=False)
    yield store.port
    del store


def test_an_incomplete_torchrun_environment_is_a_clear_error(monkeypatch):
    from llmkit.serve.parallel.group import TensorParallelError, torchrun_rank

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TensorParallelError, match="torchrun environment incomplete: RANK, WORLD_SIZE set, MASTER_ADDR"):
        torchrun_rank()


def test_a_torchrun_world_size_other_than_the_tensor_parallel_size_is_a_clear_error(monkeypatch, store_port):
    from llmkit.serve.parallel.group import TensorParallelError
    from llmkit.serve.parallel.workers import WorkerSpec

    environment = {"RANK": "0", "WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store_port)}
    for name, value in {**environment, "TORCHELASTIC_USE_AGENT_STORE": "True"}.items():
        monkeypatch.setenv(name, value)
    spec = WorkerSpec("m", {}, False, 2, 0, 5.0, 16, "auto", "torchrun")
    with pytest.raises(
        TensorParallelError, match="torchrun started rank 0 of 3 processes .* --tensor-parallel-size is 2"
    ):
        spec.group(0)
