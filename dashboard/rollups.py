"""Per-endpoint series from rollup rows (pure: a frame in, a frame out).

A rollup bucket holds, per replica, the ``count`` and ``sum`` of the readings in it. An
endpoint's value per bucket is the sum over its replicas for additive metrics (token
rates, replica counts), else the mean of every reading.

Rates that the pages integrate into counts (``INTEGRATED``: tokens, requests) are
weighted by how much of the bucket each replica was read in: a replica read in 15
minutes of an hour served a quarter of the hour at its rate, not the whole hour. The
readings are taken at a steady interval (the source's ``interval_s``), so a bucket that
a replica spent whole holds the endpoint's usual count, and a replica's share of its
bucket is ``count / usual`` (at most 1). The usual count is the most common one of the
(endpoint, metric) over the range, which a few partial buckets or one extra reading
(a scrape landing twice in a minute) do not move. A bucket without a reading counts
nothing, as before.

Counts (``COUNTS``: token, request and replica-second increases) need none of that: a
bucket's sum over its replicas is what was served in it, exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["COUNTS", "INTEGRATED", "ROW_COLUMNS", "SERIES_COLUMNS", "combine"]

INTEGRATED = frozenset({"prompt_tokens_per_second", "generated_tokens_per_second", "requests_per_second"})
COUNTS = frozenset({"prompt_tokens", "generated_tokens", "requests", "ready_replica_seconds"})
# One row per (endpoint, metric, bucket, count): the sum of those replicas' sums, and
# how many replicas had that count in that bucket.
ROW_COLUMNS = ["endpoint", "metric", "time", "count", "sum", "replicas"]
SERIES_COLUMNS = ["endpoint", "metric", "time", "value"]
_KEY = ["endpoint", "metric"]


def combine(rows: pd.DataFrame, additive: frozenset[str]) -> pd.DataFrame:
    """``endpoint, metric, time, value`` from ``ROW_COLUMNS`` rows, oldest first per
    (endpoint, metric)."""
    usual = _usual_count(rows)
    count = rows["count"].to_numpy(dtype=float)
    weighted = rows["metric"].isin(INTEGRATED).to_numpy()
    counted = rows["metric"].isin(COUNTS).to_numpy()
    # Per replica: mean x share of the bucket = sum / count x min(count / usual, 1);
    # a count's bucket is its sum.
    divisor = np.where(counted, 1.0, np.where(weighted, np.maximum(count, usual), count))
    parts = pd.DataFrame(
        {
            "endpoint": rows["endpoint"],
            "metric": rows["metric"],
            "time": rows["time"],
            "total": rows["sum"].to_numpy(dtype=float) / divisor,
            "sum": rows["sum"].astype(float),
            "readings": count * rows["replicas"].to_numpy(dtype=float),
        }
    )
    out = parts.groupby([*_KEY, "time"], sort=True, as_index=False)[["total", "sum", "readings"]].sum()
    out["value"] = out["total"].where(out["metric"].isin(additive | COUNTS), out["sum"] / out["readings"])
    return out[SERIES_COLUMNS]


def _usual_count(rows: pd.DataFrame) -> np.ndarray:
    """Per row, the most common count of its (endpoint, metric) (the larger on a tie)."""
    seen = rows.groupby([*_KEY, "count"], as_index=False)["replicas"].sum()
    usual = seen.sort_values(["replicas", "count"], ascending=False).drop_duplicates(_KEY)
    usual = usual.set_index(_KEY)["count"]
    keys = pd.MultiIndex.from_frame(rows[_KEY])
    return usual.reindex(keys).to_numpy(dtype=float)
