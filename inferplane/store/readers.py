"""The series reads more than one room decides from, as a Protocol: each room's own
store Protocol (what it needs of the store) extends it, and ``Store`` satisfies it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["SeriesReader"]


class SeriesReader(Protocol):
    def read_series(
        self,
        endpoint: str,
        metric: str,
        start: datetime,
        end: datetime,
        resolution: str = "auto",
        *,
        replica: str | None = "",
    ) -> list[tuple[datetime, float]]: ...

    def read_by_replica(
        self, endpoint: str, metric: str, start: datetime, end: datetime, resolution: str = "auto"
    ) -> dict[str, list[tuple[datetime, float]]]: ...
