"""The shared vocabulary of metrics: the names every source maps what it reads onto,
and the two records every room passes around, ``Sample`` and ``CostRow``.

The names are the design's, per endpoint and, where known, per replica. Latency and time
to first token are kept as their p50 and p95 quantiles. A missing or non-finite reading
is never a sample: "no data" is the absence of a sample, not a zero.

Counters are kept twice: as a rate (``*_per_second``: what policies and the spike rule
judge) and as an increase (``COUNTS``: the tokens, requests or replica-seconds added
since the previous reading of the same series, stamped at the reading that saw them).
A sum of increases over any range is what was served in it, exactly; a rate times a
span is not, so every money and volume figure sums the increases.

This is the core's: the store, the rooms and the face import it from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["COUNTS", "METRICS", "CostRow", "Sample"]

# name -> unit; the only metric names a Sample may carry.
METRICS: dict[str, str] = {
    "gpu_utilization": "ratio 0..1",
    "gpu_memory_used_bytes": "bytes",
    "requests_running": "requests",
    "requests_waiting": "requests",
    "request_latency_seconds_p50": "seconds",
    "request_latency_seconds_p95": "seconds",
    "time_to_first_token_seconds_p50": "seconds",
    "time_to_first_token_seconds_p95": "seconds",
    "prompt_tokens_per_second": "tokens/s",
    "generated_tokens_per_second": "tokens/s",
    "requests_per_second": "requests/s",
    "replicas": "replicas",
    "ready_replicas": "replicas",
    # Increases since the previous reading (see the module docstring).
    "prompt_tokens": "tokens",
    "generated_tokens": "tokens",
    "requests": "requests",
    "ready_replica_seconds": "replica-seconds",
}
# The metrics that hold increases: a sum over time (and over replicas) is meaningful.
COUNTS = frozenset({"prompt_tokens", "generated_tokens", "requests", "ready_replica_seconds"})


@dataclass(frozen=True)
class Sample:
    """One reading in the vocabulary. ``time`` is timezone-aware UTC; ``replica`` is ""
    when the reading is for the endpoint as a whole."""

    time: datetime
    endpoint: str
    metric: str
    value: float
    replica: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; the vocabulary is {sorted(METRICS)}")
        if not math.isfinite(self.value):
            raise ValueError(f"{self.metric} for {self.endpoint!r} is not finite ({self.value})")
        if self.time.tzinfo is None:
            raise ValueError("sample time must be timezone-aware (UTC)")


@dataclass(frozen=True)
class CostRow:
    """Money spent in one period by one endpoint or cloud resource.

    ``source`` says whether the figure is ``estimated`` (computed from readings and the
    price table) or ``billed`` (from the cloud's cost API).
    """

    period_start: datetime
    period_end: datetime
    endpoint: str  # endpoint name, or the cloud resource id when no endpoint maps to it
    service: str  # e.g. "gpu", "tokens", "Azure Machine Learning"
    amount: float
    currency: str
    source: Literal["estimated", "billed"]

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount):
            raise ValueError(f"cost for {self.endpoint!r} is not finite ({self.amount})")
        if self.period_end <= self.period_start:
            raise ValueError("a cost period must end after it starts")
