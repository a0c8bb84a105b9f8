"""What the collector needs of the store: a Protocol, so the collector's signatures say
which reads and writes it relies on (``inferplane.store.Store`` is the one it is given)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from inferplane.vocabulary import CostRow, Sample

__all__ = ["CollectorStore"]


class CollectorStore(Protocol):
    def write_samples(
        self, samples: Iterable[Sample], *, states: Sequence[tuple[str, Mapping[str, Any], datetime]] = ()
    ) -> int: ...

    def write_costs(self, rows: Iterable[CostRow]) -> int: ...

    def record_gap(self, source: str, endpoint: str, start: datetime, end: datetime, reason: str) -> None: ...

    def read_by_replica(
        self, endpoint: str, metric: str, start: datetime, end: datetime, resolution: str = "auto"
    ) -> dict[str, list[tuple[datetime, float]]]: ...

    def load_state(self, key: str) -> dict[str, Any] | None: ...

    def save_state(self, key: str, value: Mapping[str, Any], now: datetime) -> None: ...

    def rollup(self, now: datetime) -> None: ...

    def apply_retention(
        self, now: datetime, raw_days: int = 2, minute_days: int = 14, hour_days: int = 400
    ) -> dict[str, int]: ...

    def close(self) -> None: ...
