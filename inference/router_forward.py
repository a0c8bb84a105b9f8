"""Forwarding one request to a replica, and relaying its answer as it arrives.

A request goes to the least busy ready replica (``ReplicaPool.acquire``; held while none
is ready, 429 when the hold queue is full). If the connection to that replica fails
before any byte of its answer arrived (refused: the replica is gone; reset or closed
mid-request: it died, e.g. kill -9), nothing has reached the client, so the request is
sent again to another replica, up to ``max_attempts`` tries in all; then 502. When the
only replica left to try is one that broke off, the retry waits ``retry_backoff_s``
(doubling) first: a replica killed with SIGKILL still completes connections for a moment
while its memory is torn down, then breaks them off, and tries sent at once would all be
spent on it; after the wait it refuses, is replaced, and the request is held for the
new one. A timeout is not retried: the replica may still be working on it, and a second
copy doubles load.

Once the answer has begun to flow, it cannot be taken back: if the replica breaks off
then, a streamed answer (server-sent events) ends with an OpenAI-shaped ``error`` event,
which the official clients raise as an error, and any other answer is cut off (the
client sees an incomplete body). Either way the client is told at once, never left
hanging, and the replica's request slot is released.

Each request's prompt tokens are estimated from its body (``BYTES_PER_TOKEN``) and count
against its replica until the answer's first byte, for the pool's "least-prefill"
routing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference.replica_pool import HoldQueueFull, NoReplicaReady, Replica, ReplicaPool
from inference.router_metrics import RouterMetrics
from inference.router_settings import RouterSettings

__all__ = ["error_response", "forward"]

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) and those the client library sets itself.
_DROP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
_DROP_REQUEST = _DROP | {"host", "content-length"}
# The connection broke after the request left and before any answer came back.
_BROKE_OFF = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# About four bytes of English text per token. The router has no tokenizer, and picking a
# replica needs only which prompts are long; the JSON around a long prompt is small.
BYTES_PER_TOKEN = 4


def relayable(path: str) -> bool:
    """Whether ``path`` (as the server decoded it) stays under ``/v1/`` at the replica: no
    ``.`` or ``..`` segment, even decoded once more. The upstream URL is normalised on the
    way out, so ``/v1/../admin/drain`` (or ``/v1/%2e%2e/admin/drain``) would reach the
    replica's own admin routes, past the router's admin key."""
    for candidate in (path, unquote(path)):
        if not candidate.startswith("/v1/") or any(part in (".", "..") for part in candidate.split("/")):
            return False
    return True


async def forward(
    request: Request, pool: ReplicaPool, client: httpx.AsyncClient, metrics: RouterMetrics, s: RouterSettings
) -> Response:
    """Send ``request`` to a ready replica (retrying elsewhere as above); relay the answer."""
    if not relayable(request.url.path):
        metrics.count("bad_path")
        return error_response(400, "the path must stay under /v1/: no '.' or '..' segments")
    body = await _read_body(request, s.max_body_bytes)
    if body is None:
        metrics.count("too_large")
        return error_response(413, f"the request body is over {s.max_body_bytes} bytes (the router's limit)")
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST]
    tokens = len(body) // BYTES_PER_TOKEN
    tried: list[Replica] = []
    problem = "no replica answered"
    for attempt in range(s.max_attempts):
        if attempt:
            metrics.retried()
        try:
            replica = await pool.acquire(s.hold_timeout_s, exclude=tried, prompt_tokens=tokens)
        except HoldQueueFull as error:
            metrics.count("overloaded")
            return error_response(429, f"{s.endpoint!r} is overloaded: {error}", retry_after=s.retry_after_s)
        except NoReplicaReady as error:
            metrics.count("shutting_down" if pool.closing else "hold_timeout")
            return error_response(503, f"no replica of {s.endpoint!r} is ready: {error}", s.retry_after_s)
        if await request.is_disconnected():
            pool.release(replica, tokens)  # the client left while held: do not spend a replica on it
            return Response(status_code=499)
        upstream_request = client.build_request(
            request.method,
            f"{replica.url}{request.url.path}",
            params=request.url.query,
            headers=headers,
            content=body,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.ConnectError:
            pool.release(replica, tokens)
            pool.crashed(replica)
            problem = "refused the connection"
        except _BROKE_OFF as error:
            pool.release(replica, tokens)
            problem = f"closed the connection before answering ({type(error).__name__})"
            if attempt + 1 < s.max_attempts and not [r for r in pool.ready if r not in (*tried, replica)]:
                await asyncio.sleep(s.retry_backoff_s * 2**attempt)
        except httpx.TransportError as error:
            pool.release(replica, tokens)
            log.warning("replica %s failed before answering: %r; not retried", replica.url, error)
            metrics.count("replica_error")
            # A replica too slow to answer is a gateway timeout; one that broke is a bad gateway.
            status = 504 if isinstance(error, httpx.TimeoutException) else 502
            return error_response(status, f"the replica failed before answering ({type(error).__name__})")
        else:
            metrics.count("forwarded")
            first = _Once(functools.partial(pool.first_byte, replica, tokens))
            done = _Once(first, functools.partial(pool.release, replica))
            return _Relayed(upstream, done, functools.partial(metrics.count, "interrupted"), first)
        tried.append(replica)
        log.warning("replica %s %s; %d of %d tries used", replica.url, problem, attempt + 1, s.max_attempts)
    metrics.count("replica_error")
    return error_response(502, f"{len(tried)} replica(s) tried, each {problem}; nothing was answered")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None once it grows past ``limit`` (memory stays bounded)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _Once:
    """Runs its calls, in order, the first time it is called only."""

    def __init__(self, *calls: Callable[[], None]) -> None:
        self._calls = calls

    def __call__(self) -> None:
        calls, self._calls = self._calls, ()
        for call in calls:
            call()


class _Relayed(StreamingResponse):
    """A replica's answer relayed as it arrives; ``first`` hears its first byte, and the
    replica's request slot is released (and the upstream response closed) when the relay
    ends, however it ends."""

    def __init__(
        self,
        upstream: httpx.Response,
        done: Callable[[], None],
        broke: Callable[[], None],
        first: Callable[[], None],
    ) -> None:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
        super().__init__(_relay(upstream, broke, first), status_code=upstream.status_code, headers=headers)
        self._upstream = upstream
        self._done = done

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._done()
            await self._upstream.aclose()


async def _relay(
    upstream: httpx.Response, broke: Callable[[], None], first: Callable[[], None]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            first()
            yield chunk
    except httpx.TransportError as error:
        broke()
        log.warning("replica %s broke off mid-answer (%s)", upstream.request.url.host, type(error).__name__)
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            raise  # the transport cuts the connection: the client sees an incomplete body
        message = f"the replica serving this stream failed mid-answer ({type(error).__name__}); retry"
        event = {"error": {"message": message, "type": "service_unavailable", "param": None, "code": None}}
        yield f"\n\ndata: {json.dumps(event)}\n\n".encode()


def error_response(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    """An OpenAI-shaped error (with Retry-After when given)."""
    kind = (
        "rate_limit_exceeded"
        if status == 429
        else "service_unavailable"
        if status >= 500
        else "authentication_error"
        if status == 401
        else "invalid_request_error"
    )
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)
