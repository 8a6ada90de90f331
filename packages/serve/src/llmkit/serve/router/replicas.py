"""Routing over replicas: every backend is a whole `llmkit serve --role replica`.

`cache-aware` (the default) sends a request to the replica whose prefix index matches the most of
its prompt, when that match covers at least `cache_threshold` of the prompt's chunks and the replica
has at most `balance_slack` more requests in flight than the least loaded one; otherwise to the least
loaded replica (fewest outstanding requests, then fewest routed). `least-loaded` ignores prefixes and
`round-robin` ignores load too (the baseline). A request that never started on a replica (connection
refused, or a 503: overloaded or draining) is retried on another; one that had started ends with a
clear error (a 502, or an error event on a stream). Health checks take a replica out and put it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

import httpx
from starlette.responses import Response, StreamingResponse

from .app import Call, error_response, passed_headers, relayed, sse_error
from .prefix_index import PrefixIndex, chunk_hashes, prompt_text
from .strategies import STRATEGIES

logger = logging.getLogger(__name__)

# The request did not reach the replica (a partly written body is never processed either).
NEVER_STARTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.WriteError)


@dataclass(eq=False)
class Replica:
    url: str
    healthy: bool = True
    outstanding: int = 0  # requests sent and not finished
    routed: int = 0
    failures: int = 0  # requests that failed on it after they had started
    index: PrefixIndex = field(default_factory=PrefixIndex)

    def mark_down(self, reason: object) -> None:
        if self.healthy:
            logger.warning("replica %s is down: %s", self.url, reason)
        self.healthy = False
        self.index.clear()  # a restarted replica starts with an empty prefix cache


class ReplicaPolicy:
    def __init__(
        self,
        urls: list[str],
        *,
        strategy: str = "cache-aware",
        cache_threshold: float = 0.5,
        balance_slack: int = 4,
        health_interval: float = 2.0,
    ):
        if not urls:
            raise ValueError("the router needs at least one --backend URL")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown routing strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if len(set(urls)) != len(urls):
            raise ValueError("a --backend URL is given twice")
        self.replicas = [Replica(url.rstrip("/")) for url in urls]
        self.strategy, self.cache_threshold, self.balance_slack = strategy, cache_threshold, balance_slack
        self.health_interval = health_interval
        self._turn = itertools.count()
        self._health_task: asyncio.Task | None = None
        self.affinity_routed = self.retried = 0

    # --- choosing -----------------------------------------------------------------------------

    def choose(self, hashes: list[bytes], tried: set[Replica]) -> Replica | None:
        candidates = [r for r in self.replicas if r.healthy and r not in tried]
        if not candidates:
            return None
        if self.strategy == "round-robin":
            return candidates[next(self._turn) % len(candidates)]
        least = min(candidates, key=lambda r: (r.outstanding, r.routed))
        if self.strategy == "cache-aware" and hashes:
            matches = {r: r.index.match(hashes) for r in candidates}
            best = max(candidates, key=lambda r: (matches[r], -r.outstanding))
            if (
                matches[best] > 0
                and matches[best] >= self.cache_threshold * len(hashes)
                and best.outstanding <= least.outstanding + self.balance_slack
            ):
                self.affinity_routed += 1
                return best
        return least

    # --- forwarding ---------------------------------------------------------------------------

    async def forward(self, call: Call, client: httpx.AsyncClient) -> Response:
        hashes = chunk_hashes(prompt_text(call.payload)) if call.endpoint != "embeddings" else []
        tried: set[Replica] = set()
        overloaded: httpx.Response | None = None
        while (replica := self.choose(hashes, tried)) is not None:
            if tried:
                self.retried += 1
            tried.add(replica)
            replica.outstanding += 1
            handed_over = False  # a stream's relay releases the replica when the stream ends
            try:
                request = client.build_request("POST", replica.url + call.path, content=call.raw, headers=call.headers)
                try:
                    response = await client.send(request, stream=call.stream)
                except NEVER_STARTED as err:
                    replica.mark_down(err)
                    continue
                except httpx.HTTPError as err:
                    replica.failures += 1
                    return error_response(
                        502, f"replica {replica.url} failed after the request reached it: {err}", "replica_failed"
                    )
                if response.status_code == 503:  # overloaded or draining: it did not start the request
                    await response.aread()
                    await response.aclose()
                    overloaded = response
                    continue
                replica.routed += 1
                replica.index.insert(hashes)
                if not call.stream:
                    return relayed(response)
                handed_over = True
                return StreamingResponse(
                    self._relay(replica, response), status_code=response.status_code, headers=passed_headers(response)
                )
            finally:
                if not handed_over:
                    replica.outstanding -= 1
        if overloaded is not None:
            return relayed(overloaded)
        return error_response(503, "no replica is available", "no_replica", headers={"retry-after": "1"})

    async def _relay(self, replica: Replica, response: httpx.Response):
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as err:
            replica.failures += 1
            yield sse_error(f"replica {replica.url} failed mid-stream: {type(err).__name__}: {err}", "replica_failed")
        finally:
            replica.outstanding -= 1
            await response.aclose()

    # --- health -------------------------------------------------------------------------------

    async def check(self, client: httpx.AsyncClient) -> None:
        async def one(replica: Replica) -> None:
            try:
                ok = (await client.get(f"{replica.url}/health", timeout=max(self.health_interval, 1.0))).status_code
                ok = ok == 200
            except httpx.HTTPError as err:
                ok, reason = False, err
            else:
                reason = "health check failed"
            if ok and not replica.healthy:
                logger.warning("replica %s is back", replica.url)
            if ok:
                replica.healthy = True
            else:
                replica.mark_down(reason)

        await asyncio.gather(*(one(r) for r in self.replicas))

    async def start(self, client: httpx.AsyncClient) -> None:
        async def loop() -> None:
            while True:
                await self.check(client)
                await asyncio.sleep(self.health_interval)

        self._health_task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task

    async def health(self, client: httpx.AsyncClient) -> tuple[bool, dict]:
        await self.check(client)
        states = {r.url: r.healthy for r in self.replicas}
        return any(states.values()), {"policy": self.strategy, "replicas": states}

    def model_urls(self) -> list[str]:
        return [r.url for r in self.replicas if r.healthy] or [r.url for r in self.replicas]

    def metrics(self) -> list[tuple[str, str, dict[str, str], float]]:
        samples = []
        for r in self.replicas:
            labels = {"replica": r.url}
            samples += [
                (
                    "llmkit_router_replica_healthy",
                    "1 when the replica passes its health check",
                    labels,
                    float(r.healthy),
                ),
                ("llmkit_router_outstanding_requests", "Requests sent and not finished", labels, float(r.outstanding)),
                ("llmkit_router_routed_requests", "Requests the replica accepted", labels, float(r.routed)),
                ("llmkit_router_failed_requests", "Requests that failed after they started", labels, float(r.failures)),
            ]
        samples += [
            (
                "llmkit_router_affinity_routed",
                "Requests sent to a replica for its cached prefix",
                {},
                self.affinity_routed,
            ),
            ("llmkit_router_retried", "Requests retried on another replica before they started", {}, self.retried),
        ]
        return samples
