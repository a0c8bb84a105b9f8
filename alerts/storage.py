"""What the alert engine needs of the store: a Protocol, so its signatures say which
reads and writes it relies on (``inferplane.store.Store`` is the one it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from inferplane.store.readers import SeriesReader
from inferplane.vocabulary import CostRow

__all__ = ["AlertStore", "ReadingStore"]


class ReadingStore(SeriesReader, Protocol):
    """The reads the rules' readings are built from."""

    def read_costs(
        self, start: datetime, end: datetime, endpoint: str | None = None, source: str | None = None
    ) -> list[CostRow]: ...

    def read_scaling_events(
        self, start: datetime, end: datetime, endpoint: str | None = None
    ) -> list[dict[str, Any]]: ...

    def first_sample_time(self, endpoints: list[str], since: datetime) -> datetime | None: ...


class AlertStore(ReadingStore, Protocol):
    """The readings, plus the alert state, silences, transitions and deliveries."""

    def load_state(self, key: str) -> dict[str, Any] | None: ...

    def save_state(self, key: str, value: Mapping[str, Any], now: datetime) -> None: ...

    def read_silences(self, now: datetime) -> list[dict[str, Any]]: ...

    def write_alert_event(
        self,
        time: datetime,
        fingerprint: str,
        endpoint: str,
        rule: str,
        status: Literal["firing", "resolved"],
        summary: str,
        details: Mapping[str, Any],
    ) -> None: ...

    def write_delivery(
        self, time: datetime, fingerprint: str, channel: str, attempt: int, ok: bool, error: str | None = None
    ) -> None: ...

    def close(self) -> None: ...
