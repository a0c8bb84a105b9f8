"""Run the service under uvicorn with a graceful drain.

On the first SIGTERM or SIGINT the replica stops admitting (``/ready`` answers 503 and
new requests get 503 with Retry-After, so a router or load balancer moves on), lets
every request in flight finish, then exits. A second signal exits at once.
``POST /admin/drain {"exit": true}`` does the same over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn

from inference.app import create_app
from inference.service import InferenceService
from inference.settings import ServiceSettings

__all__ = ["serve"]

log = logging.getLogger(__name__)


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: InferenceService, exit_requested: asyncio.Event):
        super().__init__(config)
        self._service = service
        self._exit_requested = exit_requested
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._service.draining or not self._service.ready:
            super().handle_exit(sig, frame)  # second signal, or nothing to drain yet
            return
        self._service.begin_drain()
        self._exit_requested.set()

    async def main_loop(self) -> None:
        watcher = asyncio.create_task(self._exit_when_drained())
        try:
            await super().main_loop()
        finally:
            watcher.cancel()

    async def _exit_when_drained(self) -> None:
        await self._exit_requested.wait()
        self._service.begin_drain()
        settings = self._service.settings
        if not await self._service.wait_idle(settings.drain_timeout_s):
            log.warning(
                "drain timeout (%s s) passed with %d requests in flight",
                settings.drain_timeout_s,
                self._service.in_flight,
            )
        log.info("drained; shutting down")
        self.should_exit = True


def serve(
    settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Serve until drained; blocks."""
    service = InferenceService(settings)
    app = create_app(settings, service)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    server = _DrainingServer(config, service, app.state.exit_requested)
    server.run()
