"""The ``local`` target: replicas of the bundled service behind ``inferplane router``.

It talks to the router's admin API over HTTP (httpx): ``GET /admin/replicas`` for the
set and ready counts, ``PUT /admin/replicas {"replicas": n}`` to scale (the router
answers 202 at once; it starts replicas in the background and drains before stopping).

Where the router is: ``TargetOptions.base_url`` (tests), else the config's
``router_url``, else ``http://127.0.0.1:8100`` (the router's default port). The admin
key, when the router was started with ``--admin-key-env NAME``, comes from the
``INFERPLANE_ROUTER_ADMIN_KEY`` variable (read once in ``build``; never logged).
The router reports the endpoint it serves; a different name is refused, so an
autoscaler never scales another endpoint's router.

Errors, translated at this boundary (original chained): connection refused, timeout
and 5xx -> ``TargetUnavailable``; 409/412 -> ``TargetConflict``; 429 ->
``TargetThrottled`` (with Retry-After); any other 4xx (bad count, wrong key) ->
``TargetRefused``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from autoscaler.targets.base import (
    ReplicaCount,
    TargetConflict,
    TargetOptions,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
)

__all__ = ["DEFAULT_ROUTER_URL", "KEY_VARIABLE", "LocalRouterTarget", "build"]

DEFAULT_ROUTER_URL = "http://127.0.0.1:8100"
KEY_VARIABLE = "INFERPLANE_ROUTER_ADMIN_KEY"


class LocalRouterTarget:
    """Scale the replicas behind one router through its admin API."""

    def __init__(
        self,
        endpoint_name: str,
        base_url: str = DEFAULT_ROUTER_URL,
        admin_key: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._endpoint = endpoint_name
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._client = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    def current_replicas(self) -> ReplicaCount:
        body = self._call("GET", "/admin/replicas").json()
        served = body.get("endpoint")
        if served is not None and served != self._endpoint:
            raise TargetRefused(
                f"endpoint {self._endpoint!r}: the router at {self._client.base_url} serves {served!r}; "
                f"start it with --endpoint {self._endpoint} or point the target at the right router"
            )
        return ReplicaCount(desired=int(body["desired"]), ready=int(body["ready"]))

    def scale_to(self, replicas: int) -> None:
        self._call("PUT", "/admin/replicas", json={"replicas": replicas})

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        where = f"endpoint {self._endpoint!r}: {method} {self._client.base_url.join(path.lstrip('/'))}"
        try:
            reply = self._client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise TargetUnavailable(f"{where}: the router is unreachable ({type(error).__name__})") from error
        if reply.is_success:
            return reply
        detail = _message(reply)
        cause = httpx.HTTPStatusError(detail, request=reply.request, response=reply)
        status = reply.status_code
        if status in (409, 412):
            raise TargetConflict(f"{where}: conflict ({status}): {detail}") from cause
        if status == 429:
            retry = _retry_after(reply)
            raise TargetThrottled(f"{where}: throttled (429): {detail}", retry) from cause
        if 400 <= status < 500:
            raise TargetRefused(f"{where}: refused ({status}): {detail}") from cause
        raise TargetUnavailable(f"{where}: router error ({status}): {detail}") from cause


def build(endpoint_name: str, target_config: Any, options: TargetOptions) -> LocalRouterTarget:
    """The target for a ``LocalTarget`` config (its ``model`` and ``ports`` are the router's)."""
    return LocalRouterTarget(
        endpoint_name,
        base_url=options.base_url or getattr(target_config, "router_url", None) or DEFAULT_ROUTER_URL,
        admin_key=os.environ.get(KEY_VARIABLE) or None,
        timeout_s=options.timeout_s,
    )


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:200] or reply.reason_phrase


def _retry_after(reply: httpx.Response) -> float | None:
    try:
        return float(reply.headers["retry-after"])
    except (KeyError, ValueError):
        return None
