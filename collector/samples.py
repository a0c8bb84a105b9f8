"""What every source returns, and the source protocols.

Sources return the core's vocabulary (``inferplane.vocabulary``: ``Sample``, ``CostRow``,
``METRICS``, ``COUNTS``; re-exported here for the collector's modules) and raise
``SourceError`` when they cannot deliver: "no data" is the absence of a sample (or a
``SourceError``), not a zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Protocol

from inferplane.vocabulary import COUNTS, METRICS, CostRow, Sample

__all__ = [
    "COUNTS",
    "METRICS",
    "CostRow",
    "CostSource",
    "MetricSource",
    "Sample",
    "SourceError",
]


class SourceError(Exception):
    """A source could not deliver; the message names the source and what failed."""


class MetricSource(Protocol):
    """Reads metrics from one place and returns them in the vocabulary."""

    name: str

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        """Samples for ``[start, end]``; raise ``SourceError`` when the source is down."""
        ...


class CostSource(Protocol):
    """Reads billed cost from one place."""

    name: str

    def fetch_costs(self, start: date, end: date) -> Iterable[CostRow]:
        """Daily cost rows for the days ``start..end``; raise ``SourceError`` when down."""
        ...
