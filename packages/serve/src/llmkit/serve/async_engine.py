"""`AsyncEngine`: the engine on its own thread, with an async stream per request.

The engine is single-threaded; every call reaches it through a command queue and runs
between steps. Outputs come back to the event loop with `call_soon_threadsafe`. A stream
that is closed early (client gone, task cancelled) aborts its request, freeing its blocks.
A request that a failed step ended (see failure_isolation) raises `RequestFailed` in its
stream; the other streams go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from llmkit.core.errors import LlmkitError

from .engine import Engine, EngineStats
from .outputs import RequestOutput

logger = logging.getLogger(__name__)


class EngineOverloaded(LlmkitError):
    """Too many requests are waiting; retry later."""


class RequestFailed(LlmkitError):
    """The engine ended this request because a step failed on it (other requests were not affected)."""


class AsyncEngine:
    def __init__(self, engine: Engine, max_waiting: int = 256):
        self.engine = engine
        self.max_waiting = max_waiting
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._streams: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="llmkit-engine", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping:
            while not self._commands.empty():
                self._commands.get()()
            if self.engine.has_unfinished():
                try:
                    outputs = self.engine.step()
                except Exception as err:  # failed outside any batch (the engine isolates batch failures)
                    logger.exception("engine step failed outside a batch; ending every request")
                    self._fail_all(err)
                    continue
                for output in outputs:
                    self._deliver(output.request_id, output)
            else:
                self._wake.wait(timeout=0.5)
                self._wake.clear()

    def _deliver(self, request_id: str, item: RequestOutput | BaseException) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            loop, q = stream
            loop.call_soon_threadsafe(q.put_nowait, item)

    def _fail_all(self, err: Exception) -> None:
        for request_id in list(self.engine.requests):
            self.engine.abort(request_id)
            self._deliver(request_id, err)

    def call(self, function: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `function` on the engine thread between steps."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():  # the caller gave up before it ran
                return
            try:
                future.set_result(function())
            except BaseException as err:
                future.set_exception(err)

        self._commands.put(run)
        self._wake.set()
        return future

    async def stats(self) -> EngineStats:
        return await asyncio.wrap_future(self.call(self.engine.stats))

    async def generate(self, prompt, params, request_id: str, admit=None) -> AsyncIterator[RequestOutput]:
        """Stream the outputs of one request; closing the stream early aborts it. `admit` (an async
        callable) replaces the usual queueing of the prompt, e.g. to import prefilled K/V."""
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()
        self._streams[request_id] = (loop, outputs)

        def add() -> str:
            if len(self.engine.scheduler.waiting) >= self.max_waiting:
                raise EngineOverloaded(f"{len(self.engine.scheduler.waiting)} requests are already waiting")
            return self.engine.add_request(prompt, params, request_id)

        finished = False
        try:
            if admit is None:
                await asyncio.wrap_future(self.call(add))
            else:
                await admit()
            while not finished:
                item = await outputs.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                if item.error is not None:
                    raise RequestFailed(item.error)
                yield item
        finally:
            self._streams.pop(request_id, None)
            if not finished:
                self.call(lambda: self.engine.abort(request_id))

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
