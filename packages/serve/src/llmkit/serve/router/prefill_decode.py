"""Routing over a prefill worker and a decode worker (disaggregated serving).

Each chat or completion request is prefilled on the prefill worker, its KV blocks are sent to the
decode worker (torch.distributed, worker to worker), and the decode worker's response is relayed to
the client. A decode worker that fails mid-stream ends the stream with an error event, never a
hang. Embeddings need no KV and go to the decode worker directly.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from starlette.responses import Response, StreamingResponse

from ..disaggregated.workers import TRANSFER_HEADER
from .app import Call, error_response, passed_headers, relayed, sse_error


class PrefillDecodePolicy:
    def __init__(self, prefill_url: str, decode_url: str):
        self.prefill_url, self.decode_url = prefill_url.rstrip("/"), decode_url.rstrip("/")
        self.transfers = self.failures = 0

    async def forward(self, call: Call, client: httpx.AsyncClient) -> Response:
        if call.endpoint == "embeddings":
            try:
                return relayed(await client.post(self.decode_url + call.path, content=call.raw, headers=call.headers))
            except httpx.HTTPError as err:
                return error_response(502, f"the decode worker failed: {err}", "worker_failed")
        try:
            prefilled = await client.post(
                f"{self.prefill_url}/internal/prefill",
                json={"endpoint": call.endpoint, "request": call.payload},
                headers=call.headers,
            )
        except httpx.HTTPError as err:
            return error_response(502, f"the prefill worker is unreachable: {err}", "worker_failed")
        if prefilled.status_code != 200:
            return relayed(prefilled)
        info = prefilled.json()
        self.transfers += 1
        send = asyncio.ensure_future(
            client.post(
                f"{self.prefill_url}/internal/send", json={"transfer_id": info["transfer_id"]}, headers=call.headers
            )
        )
        headers = {**call.headers, TRANSFER_HEADER: f"{info['transfer_id']}:{info['num_blocks']}"}
        url = self.decode_url + call.path
        if call.stream:
            try:
                response = await client.send(
                    client.build_request("POST", url, content=call.raw, headers=headers), stream=True
                )
            except httpx.HTTPError as err:
                await _settle(send)
                self.failures += 1
                return error_response(502, f"the decode worker failed: {err}", "worker_failed")
            return StreamingResponse(
                self._relay(response, send), status_code=response.status_code, headers=passed_headers(response)
            )
        try:
            return relayed(await client.post(url, content=call.raw, headers=headers))
        except httpx.HTTPError as err:
            self.failures += 1
            return error_response(502, f"the decode worker failed: {err}", "worker_failed")
        finally:
            await _settle(send)

    async def _relay(self, response: httpx.Response, send: asyncio.Future):
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as err:
            self.failures += 1
            yield sse_error(f"the decode worker failed mid-stream: {type(err).__name__}: {err}", "worker_failed")
        finally:
            await response.aclose()
            await _settle(send)

    async def start(self, client: httpx.AsyncClient) -> None:
        pass

    async def stop(self) -> None:
        pass

    def model_urls(self) -> list[str]:
        return [self.decode_url]

    async def health(self, client: httpx.AsyncClient) -> tuple[bool, dict]:
        states = {}
        for name, url in (("prefill", self.prefill_url), ("decode", self.decode_url)):
            try:
                states[name] = (await client.get(f"{url}/health", timeout=5)).status_code == 200
            except httpx.HTTPError:
                states[name] = False
        return all(states.values()), {"policy": "prefill-decode", "workers": states}

    def metrics(self) -> list[tuple[str, str, dict[str, str], float]]:
        return [
            ("llmkit_router_kv_transfers", "Prefills handed to the decode worker", {}, float(self.transfers)),
            ("llmkit_router_failed_requests", "Requests the decode worker failed", {}, float(self.failures)),
        ]


async def _settle(send: asyncio.Future) -> None:
    with contextlib.suppress(httpx.HTTPError):
        await send
