"""What the collector read but could not store yet, kept until the store is back.

When the store fails (a read-only disk, a dropped database connection) a collect cycle
still reads its sources; the samples and gaps it could not write wait here, in memory,
and go in with the next write that succeeds (writes are idempotent upserts, so a sample
written twice is stored once). The wait is bounded: past ``max_samples`` the oldest
samples are dropped and counted, so an outage of hours cannot exhaust memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collector.samples import Sample
from collector.storage import CollectorStore

__all__ = ["Gap", "PendingWrites"]


@dataclass(frozen=True)
class Gap:
    """A recorded source gap (the arguments of ``store.record_gap``)."""

    source: str
    endpoint: str
    start: datetime
    end: datetime
    reason: str


class PendingWrites:
    """Samples and gaps waiting for the store, oldest first; ``flush`` writes them."""

    def __init__(self, max_samples: int = 200_000, max_gaps: int = 10_000) -> None:
        self._samples: deque[Sample] = deque(maxlen=max_samples)
        self._gaps: deque[Gap] = deque(maxlen=max_gaps)
        # Per source, the newest counter state not saved yet: it goes in with the samples
        # computed from it, whichever source's write succeeds first.
        self._states: dict[str, tuple[str, dict[str, Any], datetime]] = {}
        self.dropped = 0  # samples pushed out by the bound, over the collector's life

    def __len__(self) -> int:
        return len(self._samples) + len(self._gaps)

    def add(self, samples: Sequence[Sample] = (), gaps: Sequence[Gap] = ()) -> None:
        """Keep ``samples`` and ``gaps`` (after those already kept); count what the bound drops."""
        overflow = max(0, len(self._samples) + len(samples) - (self._samples.maxlen or 0))
        self.dropped += min(overflow, len(self._samples) + len(samples))
        self._samples.extend(samples)
        self._gaps.extend(gaps)

    def earliest(self) -> datetime | None:
        """The oldest time among the waiting samples (None: none wait)."""
        return min((s.time for s in self._samples), default=None)

    def flush(self, store: CollectorStore, *states: tuple[str, dict[str, Any], datetime]) -> int:
        """Write every waiting gap and sample, and ``states`` (key, document, now) with
        every state kept from a failed write, in the same transaction as the samples
        (raises the store's error, keeping them all); returns the number of samples
        written."""
        while self._gaps:
            gap = self._gaps[0]
            store.record_gap(gap.source, gap.endpoint, gap.start, gap.end, gap.reason)
            self._gaps.popleft()
        for state in states:
            self._states[state[0]] = state
        if not self._samples and not self._states:
            return 0
        written = int(store.write_samples(list(self._samples), states=list(self._states.values())))
        self._samples.clear()
        self._states.clear()
        return written
