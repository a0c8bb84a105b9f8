"""The ``local`` target against a real router with fake replicas, and its error
translation against a server answering scripted statuses and a closed port."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from autoscaler.targets import (
    ReplicaCount,
    TargetConflict,
    TargetError,
    TargetOptions,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
    build_target,
)
from autoscaler.targets.local import LocalRouterTarget
from inference.replica_process import free_port
from inferplane.config.endpoints import LocalTarget
from tests.local_servers import wait_for
from tests.test_router import Fleet, ServerThread, running_router


def local_config(**extra: Any) -> LocalTarget:
    return LocalTarget(kind="local", model="fake", **extra)


def test_reads_and_scales_a_real_router() -> None:
    with running_router(Fleet(), initial_replicas=1) as url:
        target = build_target("chat", local_config(), TargetOptions(base_url=url))
        try:
            wait_for(lambda: target.current_replicas() == ReplicaCount(1, 1), 10, "one ready replica")
            target.scale_to(3)
            assert target.current_replicas().desired == 3
            wait_for(lambda: target.current_replicas() == ReplicaCount(3, 3), 10, "three ready replicas")
            target.scale_to(0)
            wait_for(lambda: target.current_replicas() == ReplicaCount(0, 0), 10, "zero replicas")
            with pytest.raises(TargetRefused, match="between 0 and 4"):
                target.scale_to(5)
        finally:
            target.close()


def test_refuses_a_router_of_another_endpoint() -> None:
    with running_router(Fleet(), initial_replicas=0) as url:
        target = build_target("other", local_config(), TargetOptions(base_url=url))
        with pytest.raises(TargetRefused, match="serves 'chat'; start it with --endpoint other"):
            target.current_replicas()
        target.close()


def test_sends_the_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"ROUTER_KEY": "s3cret"}
    with running_router(Fleet(), environ, initial_replicas=0, admin_key_env="ROUTER_KEY") as url:
        keyless = LocalRouterTarget("chat", url)
        with pytest.raises(TargetRefused, match="401") as refused:
            keyless.current_replicas()
        keyless.close()
        assert "s3cret" not in str(refused.value)
        monkeypatch.setenv("INFERPLANE_ROUTER_ADMIN_KEY", "s3cret")
        target = build_target("chat", local_config(), TargetOptions(base_url=url))
        assert target.current_replicas() == ReplicaCount(0, 0)
        target.close()


def test_router_url_from_the_config() -> None:
    with running_router(Fleet(), initial_replicas=0) as url:
        target = build_target("chat", local_config(router_url=url))
        assert target.current_replicas() == ReplicaCount(0, 0)
        target.close()


def _scripted(status: int, headers: dict[str, str]) -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"error": {"message": f"scripted {status}"}}, status_code=status, headers=headers)

    return Starlette(routes=[Route("/admin/replicas", answer, methods=["GET", "PUT"])])


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        pytest.param(409, {}, TargetConflict, None, id="409-conflict"),
        pytest.param(429, {"Retry-After": "7"}, TargetThrottled, 7.0, id="429-with-retry-after"),
        pytest.param(429, {}, TargetThrottled, None, id="429-without"),
        pytest.param(404, {}, TargetRefused, None, id="404-refused"),
        pytest.param(500, {}, TargetUnavailable, None, id="500-unavailable"),
        pytest.param(503, {"Retry-After": "5"}, TargetUnavailable, None, id="503-unavailable"),
    ],
)
def test_error_translation(
    status: int, headers: dict[str, str], error: type[TargetError], retry_after: float | None
) -> None:
    server = ServerThread(_scripted(status, headers)).start()
    target = LocalRouterTarget("chat", server.url)
    try:
        for call in (target.current_replicas, lambda: target.scale_to(2)):
            with pytest.raises(error, match=f"scripted {status}") as raised:
                call()
            assert raised.value.__cause__ is not None
            if isinstance(raised.value, TargetThrottled):
                assert raised.value.retry_after_s == retry_after
    finally:
        target.close()
        server.stop()


def test_a_closed_port_is_unavailable() -> None:
    port = free_port()
    target = LocalRouterTarget("chat", f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TargetUnavailable, match="unreachable \\(ConnectError\\)") as raised:
        target.scale_to(1)
    assert raised.value.__cause__ is not None
    assert f"PUT http://127.0.0.1:{port}/admin/replicas:" in str(raised.value)  # the URL as asked
    target.close()
