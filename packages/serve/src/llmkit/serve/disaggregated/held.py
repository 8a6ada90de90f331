"""Prefills held on a prefill worker: a prompt computed with its KV blocks kept, registered under a
transfer id until the router asks to send it.

Every way out frees the blocks: the send takes them (and frees them after sending), a prefill that
fails or is cancelled before it is held frees them at once, and a reaper thread frees the ones
nobody sent within `hold_seconds`, whether or not more traffic arrives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time

from ..sequence import Sequence
from ..server.errors import APIError
from ..server.responses import new_id
from ..server.state import Server
from . import remote_kv
from .kv_transfer import MAX_TRANSFER_ID


class HeldPrefills:
    def __init__(self, server: Server, hold_seconds: float = 120.0):
        if not hold_seconds > 0:
            raise ValueError(f"hold_seconds must be positive, got {hold_seconds}")
        self.server, self.hold_seconds = server, hold_seconds
        self._held: dict[int, tuple[Sequence, float]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_until_closed, name="llmkit-prefill-reaper", daemon=True)
        self._reaper.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    async def prefill(self, prompt: list[int], params) -> tuple[int, Sequence]:
        """Compute `prompt` (one token, blocks kept) and hold its blocks under a new transfer id."""
        server, engine = self.server, self.server.engine
        request_id = new_id("prefill")
        started: list[Sequence] = []  # filled on the engine thread, so a cancelled caller still sees it

        def start() -> None:
            started.append(remote_kv.start_held_prefill(engine, prompt, params, request_id))

        async def admit() -> None:
            await asyncio.wrap_future(server.async_engine.call(start))

        held = False
        try:
            async for _ in server.run(None, prompt, params, request_id, admit):
                pass
            seq = started[0]
            if not remote_kv.prefill_complete(seq):
                raise APIError(
                    500, f"the prefill ended without computing the prompt ({seq.output.finish_reason})", "server_error"
                )
            transfer_id = self._hold(seq)
            held = True
            return transfer_id, seq
        finally:
            if not held:  # failed, aborted or cancelled: queued after the abort, so it runs once the prefill stopped
                server.async_engine.call(lambda: [remote_kv.release_held(engine, seq) for seq in started])

    def _hold(self, seq: Sequence) -> int:
        with self._lock:
            transfer_id = next(self._ids) % MAX_TRANSFER_ID
            self._held[transfer_id] = (seq, time.monotonic())
        return transfer_id

    def take(self, transfer_id: int) -> Sequence | None:
        """The held prefill for `transfer_id`, no longer held (the caller frees it), or None."""
        with self._lock:
            entry = self._held.pop(transfer_id, None)
        return None if entry is None else entry[0]

    def release(self, seq: Sequence) -> concurrent.futures.Future:
        engine = self.server.engine
        return self.server.async_engine.call(lambda: remote_kv.release_held(engine, seq))

    def reap(self) -> int:
        """Free the prefills held longer than `hold_seconds`; how many there were."""
        deadline = time.monotonic() - self.hold_seconds
        with self._lock:
            expired = [tid for tid, (_, since) in self._held.items() if since < deadline]
            sequences = [self._held.pop(tid)[0] for tid in expired]
        for seq in sequences:
            self.release(seq)
        return len(sequences)

    def _reap_until_closed(self) -> None:
        interval = min(self.hold_seconds / 4, 5.0)
        while not self._closed.wait(interval):
            self.reap()

    def close(self) -> None:
        """Stop the reaper and free everything still held."""
        self._closed.set()
        self._reaper.join(timeout=10)
        with self._lock:
            sequences = [seq for seq, _ in self._held.values()]
            self._held.clear()
        for seq in sequences:
            self.release(seq)
