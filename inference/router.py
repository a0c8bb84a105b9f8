"""The router in front of an endpoint's local replicas.

``create_router_app(settings, factory)`` builds an ASGI app that forwards the OpenAI
API (``/v1/*``: status, headers and body passed through, streamed as they arrive) to
the least busy ready replica of a ``ReplicaPool`` (``inference.router_forward``). While
no replica is ready (scaled to zero, or all starting) requests are held, up to
``hold_timeout_s``, then answered 503 with Retry-After; at most ``max_held`` are held,
beyond that 429 with Retry-After, so memory stays bounded however hard clients push. A
request whose replica died before answering is retried on another one.

Admin API (``Authorization: Bearer <key>`` when ``admin_key_env`` names a variable)::

    GET /admin/replicas  -> {"endpoint", "model", "desired", "ready",
                             "replicas": [{"url", "state", "outstanding", "prefill_tokens"}]}
    PUT /admin/replicas  {"replicas": n} -> 202 {"desired": n}

Metrics at ``/metrics``: see ``inference.router_metrics``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.replica_pool import ReplicaFactory, ReplicaPool
from inference.router_forward import error_response, forward
from inference.router_metrics import RouterMetrics
from inference.router_settings import RouterSettings

# RouterSettings is re-exported: it is what create_router_app takes.
__all__ = ["RouterSettings", "create_router_app"]

log = logging.getLogger(__name__)


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
        pool = ReplicaPool(factory, settings.restart_delay_s, settings.max_held, settings.routing)
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(transport=transport, timeout=timeout, limits=limits) as client:
            state.update(
                pool=pool,
                client=client,
                metrics=RouterMetrics(settings.model, settings.endpoint, pool, registry),
            )
            pool.scale_to(settings.initial_replicas)
            prober = asyncio.create_task(_probe_forever(pool, client, settings.probe_interval_s))
            try:
                yield
            finally:
                prober.cancel()
                await pool.close()

    app = FastAPI(title="inferplane router", version="0.1.0", lifespan=lifespan)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods: the OpenAI shape, like every other answer of ours.
        return error_response(error.status_code, f"{error.detail}: {request.method} {request.url.path}")

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
        replicas = [
            {"url": r.url, "state": r.state, "outstanding": r.outstanding, "prefill_tokens": r.prefill_tokens}
            for r in pool.replicas
        ]
        body = {"endpoint": settings.endpoint, "model": settings.model, "desired": pool.desired}
        return JSONResponse({**body, "ready": len(pool.ready), "replicas": replicas})

    @app.put("/admin/replicas")
    async def put_replicas(request: Request) -> JSONResponse:
        if denied := _check_key(request, admin_key):
            return denied
        desired, problem = _parse_replicas(await request.body(), settings.max_replicas)
        if problem is not None:
            return error_response(422 if desired is not None else 400, problem)
        assert desired is not None
        pool: ReplicaPool = state["pool"]
        if pool.closing:
            return error_response(503, "the router is shutting down", retry_after=settings.retry_after_s)
        log.info("scaling endpoint %s from %d to %d replicas", settings.endpoint, pool.desired, desired)
        pool.scale_to(desired)
        return JSONResponse({"desired": desired}, status_code=202)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def relay(request: Request) -> Response:
        return await forward(request, state["pool"], state["client"], state["metrics"], settings)

    return app


async def _probe_forever(pool: ReplicaPool, client: httpx.AsyncClient, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)  # a periodic job, not synchronization
        with suppress(Exception):
            await pool.probe(client)


def _parse_replicas(raw: bytes, maximum: int) -> tuple[int | None, str | None]:
    """(count, None) or (count or None, what is wrong with the body)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be a count
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
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110); the key is compared in constant time.
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode()):
        return None
    response = error_response(401, "the admin API needs 'Authorization: Bearer <key>'")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
