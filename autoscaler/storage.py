"""What the autoscaler needs of the store: a Protocol, so its signatures say which reads
it decides from and what it records (``inferplane.store.Store`` is the one it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from inferplane.store.readers import SeriesReader

__all__ = ["AutoscalerStore", "WindowStore"]


class WindowStore(SeriesReader, Protocol):
    """The reads a policy's window is built from."""


class AutoscalerStore(WindowStore, Protocol):
    """The window's reads, plus the decisions it records and the state it keeps."""

    def write_scaling_event(
        self,
        time: datetime,
        endpoint: str,
        from_replicas: int,
        to_replicas: int,
        reason: str,
        *,
        applied: bool,
        dry_run: bool,
        inputs: Mapping[str, Any],
    ) -> None: ...

    def read_scaling_events(
        self, start: datetime, end: datetime, endpoint: str | None = None
    ) -> list[dict[str, Any]]: ...

    def load_state(self, key: str) -> dict[str, Any] | None: ...

    def save_state(self, key: str, value: Mapping[str, Any], now: datetime) -> None: ...

    def close(self) -> None: ...
