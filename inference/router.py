"""The router in front of an endpoint's local replicas.

``create_router_app(settings, factory)`` builds an ASGI app that forwards the OpenAI
API (``/v1/*``: status, headers and body passed through, streamed as they arrive) to
the least busy ready replica of a ``ReplicaPool``. While no replica is ready (scaled to
zero, or all starting) requests are held, up to ``hold_timeout_s``, then answered 503
with Retry-After. A request whose replica refuses the connection (it died) is retried
once on another replica; nothing had been sent yet.

Admin API (``Authorization: Bearer <key>`` when ``admin_key_env`` names a variable)::

    GET /admin/replicas  -> {"endpoint", "model", "desired", "ready",
                             "replicas": [{"url", "state", "outstanding"}]}
    PUT /admin/replicas  {"replicas": n} -> 202 {"desired": n}

Metrics at ``/metrics`` (labels ``model``, ``endpoint``, ``replica`` as in
``inference.metrics``; live values are read from the pool at scrape time)::

    inferplane_requests_waiting{replica="router"}        requests held for a ready replica
    inferplane_router_requests_outstanding{replica=port}  requests in flight per replica
    inferplane_router_replicas{replica="router"}          desired (set) replica count
    inferplane_router_ready_replicas{replica="router"}    ready replicas
    inferplane_router_requests_total{..., outcome}        forwarded | hold_timeout |
                                                          replica_error | shutting_down
    inferplane_router_retries_total                       retried after a refused connection
    inferplane_router_replica_failures_total{..., reason} crashed | start_failed
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inference.replica_pool import NoReplicaReady, Replica, ReplicaFactory, ReplicaPool

__all__ = ["RouterSettings", "create_router_app"]

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) and those the client library sets itself.
_DROP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
_DROP_REQUEST = _DROP | {"host", "content-length"}
OUTCOMES = ("forwarded", "hold_timeout", "replica_error", "shutting_down")


@dataclass(frozen=True)
class RouterSettings:
    """How the router holds, forwards and scales; labels for its metrics."""

    model: str = "default"
    endpoint: str = "default"
    initial_replicas: int = 0
    max_replicas: int = 8
    hold_timeout_s: float = 300.0
    retry_after_s: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0
    probe_interval_s: float = 2.0
    restart_delay_s: float = 1.0
    admin_key_env: str | None = None  # the variable's name; the key itself is never logged


def create_router_app(
    settings: RouterSettings,
    factory: ReplicaFactory,
    registry: CollectorRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The router app; the pool starts its initial replicas in the lifespan."""
    admin_key = _admin_key(settings, os.environ if environ is None else environ)
    registry = registry or CollectorRegistry()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ReplicaPool(factory, settings.restart_delay_s)
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(transport=transport, timeout=timeout, limits=limits) as client:
            state.update(pool=pool, client=client, metrics=RouterMetrics(settings, pool, registry))
            pool.scale_to(settings.initial_replicas)
            prober = asyncio.create_task(_probe_forever(pool, client, settings.probe_interval_s))
            try:
                yield
            finally:
                prober.cancel()
                await pool.close()

    app = FastAPI(title="inferplane router", version="0.1.0", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        # Ready while it accepts requests, even at zero replicas: it holds them.
        pool: ReplicaPool = state["pool"]
        body = {"ready": not pool.closing, "desired": pool.desired, "ready_replicas": len(pool.ready)}
        return JSONResponse(body, status_code=503 if pool.closing else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/admin/replicas")
    async def get_replicas(request: Request) -> JSONResponse:
        if denied := _check_key(request, admin_key):
            return denied
        pool: ReplicaPool = state["pool"]
        replicas = [{"url": r.url, "state": r.state, "outstanding": r.outstanding} for r in pool.replicas]
        body = {"endpoint": settings.endpoint, "model": settings.model, "desired": pool.desired}
        return JSONResponse({**body, "ready": len(pool.ready), "replicas": replicas})

    @app.put("/admin/replicas")
    async def put_replicas(request: Request) -> JSONResponse:
        if denied := _check_key(request, admin_key):
            return denied
        desired, problem = _parse_replicas(await request.body(), settings.max_replicas)
        if problem is not None:
            return _error(422 if desired is not None else 400, problem)
        assert desired is not None
        pool: ReplicaPool = state["pool"]
        if pool.closing:
            return _error(503, "the router is shutting down", retry_after=settings.retry_after_s)
        log.info("scaling endpoint %s from %d to %d replicas", settings.endpoint, pool.desired, desired)
        pool.scale_to(desired)
        return JSONResponse({"desired": desired}, status_code=202)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def forward(request: Request) -> Response:
        return await _forward(request, state["pool"], state["client"], state["metrics"], settings)

    return app


class RouterMetrics(Collector):
    """Owns the router's Prometheus objects: counters bound once, live pool readings."""

    def __init__(self, settings: RouterSettings, pool: ReplicaPool, registry: CollectorRegistry) -> None:
        self._pool = pool
        self._base = {"model": settings.model, "endpoint": settings.endpoint}
        values = [settings.model, settings.endpoint, "router"]
        requests = Counter(
            "inferplane_router_requests",
            "Requests the router finished, by outcome.",
            ["model", "endpoint", "replica", "outcome"],
            registry=registry,
        )
        self._outcomes = {outcome: requests.labels(*values, outcome) for outcome in OUTCOMES}
        self._retries = Counter(
            "inferplane_router_retries",
            "Requests retried on another replica after a refused connection.",
            ["model", "endpoint", "replica"],
            registry=registry,
        ).labels(*values)
        registry.register(self)

    def count(self, outcome: str) -> None:
        self._outcomes[outcome].inc()

    def retried(self) -> None:
        self._retries.inc()

    def _gauge(self, name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=[*self._base, "replica"])
        for replica, value in values.items():
            family.add_metric([*self._base.values(), replica], value)
        return family

    def collect(self) -> Iterator[Metric]:
        pool = self._pool
        yield self._gauge(
            "inferplane_requests_waiting",
            "Requests held at the router for a ready replica.",
            {"router": pool.held},
        )
        yield self._gauge(
            "inferplane_router_requests_outstanding",
            "Requests in flight, per replica.",
            {r.name: r.outstanding for r in pool.replicas if r.url},
        )
        yield self._gauge("inferplane_router_replicas", "Replicas set (desired).", {"router": pool.desired})
        yield self._gauge(
            "inferplane_router_ready_replicas", "Replicas ready for requests.", {"router": len(pool.ready)}
        )
        failures = CounterMetricFamily(
            "inferplane_router_replica_failures",
            "Replicas that crashed or failed to start.",
            labels=[*self._base, "replica", "reason"],
        )
        for reason, value in (("crashed", pool.counts.crashed), ("start_failed", pool.counts.start_failed)):
            failures.add_metric([*self._base.values(), "router", reason], value)
        yield failures


async def _forward(
    request: Request, pool: ReplicaPool, client: httpx.AsyncClient, metrics: RouterMetrics, s: RouterSettings
) -> Response:
    body = await request.body()
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST]
    tried: list[Replica] = []
    for attempt in range(2):
        try:
            replica = await pool.acquire(s.hold_timeout_s, exclude=tried)
        except NoReplicaReady as error:
            outcome = "shutting_down" if pool.closing else "hold_timeout"
            metrics.count(outcome)
            return _error(503, f"no replica of {s.endpoint!r} is ready: {error}", retry_after=s.retry_after_s)
        if await request.is_disconnected():
            pool.release(replica)  # the client left while held: do not spend a replica on it
            return Response(status_code=499)
        url = f"{replica.url}{request.url.path}"
        upstream_request = client.build_request(
            request.method, url, params=request.url.query, headers=headers, content=body
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.ConnectError:
            pool.release(replica)
            pool.crashed(replica)
            tried.append(replica)
            if attempt == 0:
                metrics.retried()
                continue
            message = "the replica refused the connection twice"
        except httpx.TransportError as error:
            pool.release(replica)
            message = f"the replica failed before answering ({type(error).__name__})"
        else:
            metrics.count("forwarded")
            return _Relayed(upstream, lambda replica=replica: pool.release(replica))  # type: ignore[misc]
        break
    metrics.count("replica_error")
    return _error(502, message)


class _Relayed(StreamingResponse):
    """A replica's answer relayed as it arrives; the replica's request slot is released
    (and the upstream response closed) when the relay ends, however it ends."""

    def __init__(self, upstream: httpx.Response, done: Any) -> None:
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
        super().__init__(upstream.aiter_raw(), status_code=upstream.status_code, headers=headers)
        self._upstream = upstream
        self._done = done

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._done()
            await self._upstream.aclose()


async def _probe_forever(pool: ReplicaPool, client: httpx.AsyncClient, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)  # a periodic job, not synchronization
        with suppress(Exception):
            await pool.probe(client)


def _parse_replicas(raw: bytes, maximum: int) -> tuple[int | None, str | None]:
    """(count, None) or (count or None, what is wrong with the body)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, 'the body must be JSON: {"replicas": <count>}'
    value = body.get("replicas") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f'"replicas" must be a whole number, got {value!r}'
    if not 0 <= value <= maximum:
        return (
            value,
            f'"replicas" must be between 0 and {maximum} (the router\'s --max-replicas), got {value}',
        )
    return value, None


def _admin_key(settings: RouterSettings, environ: Mapping[str, str]) -> str | None:
    if settings.admin_key_env is None:
        return None
    key = environ.get(settings.admin_key_env, "")
    if not key:
        # Fail closed: a named but unset variable must not leave the admin API open.
        raise ValueError(f"the admin key variable {settings.admin_key_env} is not set (or empty)")
    return key


def _check_key(request: Request, key: str | None) -> JSONResponse | None:
    if key is None:
        return None
    given = request.headers.get("authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
        return None
    response = _error(401, "the admin API needs 'Authorization: Bearer <key>'")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "service_unavailable"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)
