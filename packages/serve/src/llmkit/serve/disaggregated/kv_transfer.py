"""Move KV tensors between a prefill and a decode worker over a two-rank torch.distributed group.

Rank 0 is the prefill worker, rank 1 the decode worker; gloo on CPU (NCCL where the caches live
on GPUs). Each transfer uses its own tag range, so concurrent transfers never cross. Calls run on
a small thread pool because point-to-point operations block.

torch.distributed authenticates nobody (its TCP store listens on every interface), so before any KV
moves each rank proves it holds the internal secret: an HMAC of a fresh nonce from the other rank.
A peer that cannot is refused, and every transfer then fails at once.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac
import os

import torch
import torch.distributed as dist

PREFILL_RANK, DECODE_RANK = 0, 1
_TAGS_PER_TRANSFER = 8
_HANDSHAKE_TAGS = 6  # fingerprints, nonces, proofs: two tags each
MAX_TRANSFER_ID = (2**31 - 1 - _HANDSHAKE_TAGS) // _TAGS_PER_TRANSFER  # every tag fits a signed 32-bit int


class KVTransport:
    def __init__(
        self,
        role: str,
        address: str,
        fingerprint: list[int],
        timeout: float = 60.0,
        backend: str = "gloo",
        *,
        secret: str,
    ):
        if role not in ("prefill", "decode"):
            raise ValueError(f"KV transport role must be prefill or decode, got {role!r}")
        if not secret:
            raise ValueError("the KV transport needs the internal secret to authenticate its peer")
        self.rank = PREFILL_RANK if role == "prefill" else DECODE_RANK
        self.peer = DECODE_RANK if self.rank == PREFILL_RANK else PREFILL_RANK
        self._secret = secret.encode()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="kv-transfer")
        self.connected = self._pool.submit(self._connect, address, fingerprint, timeout, backend)

    def _exchange(self, mine: torch.Tensor, tag: int) -> torch.Tensor:
        """Send `mine` and receive the peer's tensor of the same shape (prefill speaks first)."""
        theirs = torch.empty_like(mine)
        if self.rank == PREFILL_RANK:
            dist.send(mine, self.peer, tag=tag)
            dist.recv(theirs, self.peer, tag=tag + 1)
        else:
            dist.recv(theirs, self.peer, tag=tag)
            dist.send(mine, self.peer, tag=tag + 1)
        return theirs

    def _proof(self, rank: int, nonce: torch.Tensor) -> bytes:
        return hmac.new(
            self._secret, b"llmkit-kv-transfer:%d:" % rank + nonce.numpy().tobytes(), hashlib.sha256
        ).digest()

    def _authenticate_peer(self) -> None:
        mine = torch.frombuffer(bytearray(os.urandom(32)), dtype=torch.uint8)
        theirs = self._exchange(mine, tag=2)
        proof = torch.frombuffer(bytearray(self._proof(self.rank, theirs)), dtype=torch.uint8)
        peer_proof = self._exchange(proof, tag=4)
        if not hmac.compare_digest(peer_proof.numpy().tobytes(), self._proof(self.peer, mine)):
            raise RuntimeError("the peer on the KV transfer address did not prove the internal secret; refusing it")

    def _connect(self, address: str, fingerprint: list[int], timeout: float, backend: str) -> None:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{address}",
            rank=self.rank,
            world_size=2,
            timeout=datetime.timedelta(seconds=timeout),
        )
        self._authenticate_peer()
        mine = torch.tensor(fingerprint, dtype=torch.int64)
        theirs = self._exchange(mine, tag=0)
        if not torch.equal(mine, theirs):
            raise RuntimeError(
                f"prefill and decode workers disagree on the model or KV layout: {mine.tolist()} vs {theirs.tolist()}"
            )

    @staticmethod
    def _tag(transfer_id: int, part: int) -> int:
        return _HANDSHAKE_TAGS + transfer_id * _TAGS_PER_TRANSFER + part

    def send(self, tensors: list[torch.Tensor], transfer_id: int) -> concurrent.futures.Future:
        def run() -> int:
            self.connected.result()
            handles = [dist.isend(t, self.peer, tag=self._tag(transfer_id, i)) for i, t in enumerate(tensors)]
            for handle in handles:
                handle.wait()
            return sum(t.numel() * t.element_size() for t in tensors)

        return self._pool.submit(run)

    def recv(self, shapes: list[tuple[tuple[int, ...], torch.dtype]], transfer_id: int) -> concurrent.futures.Future:
        def run() -> list[torch.Tensor]:
            self.connected.result()
            tensors = [torch.empty(shape, dtype=dtype) for shape, dtype in shapes]
            handles = [dist.irecv(t, self.peer, tag=self._tag(transfer_id, i)) for i, t in enumerate(tensors)]
            for handle in handles:
                handle.wait()
            return tensors

        return self._pool.submit(run)


def fingerprint(engine) -> list[int]:
    """What both workers must agree on for blocks to be interchangeable."""
    config = engine.pretrained.config
    kv_codes = {"auto": 0, "fp8_e4m3": 1, "int8": 2, "int4": 3}
    dtype_code = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}[engine.pretrained.model.dtype]
    return [
        config.num_layers,
        config.num_kv_heads,
        config.head_dim,
        config.vocab_size,
        config.hidden_size,
        engine.config.block_size,
        dtype_code,
        kv_codes[engine.config.kv_cache_dtype],
    ]
