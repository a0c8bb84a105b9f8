"""The dashboard's figures, computed from store reads (pure: frames in, frames out).

Frames as ``dashboard.data`` returns them:

- costs: ``period_start, period_end, endpoint, service, amount, source`` (one row per
  cost row; estimated rows are hourly, billed rows usually daily);
- series: ``endpoint, metric, time, value`` (one row per bucket; additive metrics such
  as token counts and replica counts are summed over replicas, the others averaged).

Tokens are counted, never extrapolated: a bucket of ``prompt_tokens`` holds the tokens
read as served in it (counter increases), so a sum over buckets is what was served.

Days and months are UTC, as the store keeps them and as cloud bills cut them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from inferplane.config.endpoints import GpuHourPrice, TokenPrice
from inferplane.money import (
    MAX_HOLD,
    RUN_RATE_WINDOW,
    day_start,
    gpu_cost,
    month_hours,
    month_start,
    run_rate_hours,
    run_rate_start,
    token_cost,
)
from inferplane.store.reads import COST_COLUMNS

__all__ = [
    "TOTAL",
    "bucket_cost",
    "cost_frame",
    "cost_in_range",
    "cost_per_1k_tokens",
    "day_start",
    "firing_now",
    "hourly_cost",
    "hourly_metrics",
    "hours_read",
    "idle_hours",
    "late_starters",
    "month_hours",
    "month_start",
    "off_hours_savings",
    "run_rate_label",
    "run_rate_start",
    "spend_summary",
    "timeline_cost",
    "tokens_per_bucket",
    "tokens_per_hour",
    "tokens_served",
]

TOTAL = "All endpoints"
TOKEN_METRICS = ("prompt_tokens", "generated_tokens")
_SPEND_COLUMNS = [
    "today_estimated",
    "today_billed",
    "month_estimated",
    "month_billed",
    "projected_estimated",
    "projected_billed",
    "billed_minus_estimated",
]


def cost_frame(rows: Iterable[tuple[Any, ...]]) -> pd.DataFrame:
    """The costs frame from the store's ``read_cost_table`` rows (``COST_COLUMNS``):
    times as UTC datetimes, amounts as floats, typed so even when empty."""
    frame = pd.DataFrame(list(rows), columns=list(COST_COLUMNS))
    for column in ("period_start", "period_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype({"amount": float})


def _sum_by_endpoint(costs: pd.DataFrame, source: str, start: datetime, end: datetime) -> pd.Series:
    """Amount per endpoint of ``source`` rows whose period starts in ``[start, end)``."""
    rows = costs[
        (costs["source"] == source) & (costs["period_start"] >= start) & (costs["period_start"] < end)
    ]
    return rows.groupby("endpoint")["amount"].sum()


def run_rate_label(now: datetime, data_since: datetime | None) -> str:
    """How the estimated projection was made: "at the last 6 hours' rate", or over the
    shorter time the store has readings for."""
    hours = run_rate_hours(now, data_since)
    if hours >= _hours(now - run_rate_start(now)):
        return f"at the last {_hours(RUN_RATE_WINDOW):g} hours' rate"
    return (
        f"at the rate since readings began ({hours * 60:.0f} min)"
        if hours < 1
        else (f"at the rate since readings began ({hours:.1f} h)")
    )


# When readings began: one time for every endpoint, or per endpoint (missing: before
# the run rate's window).
DataSince = datetime | Mapping[str, datetime] | None


def spend_summary(costs: pd.DataFrame, now: datetime, data_since: DataSince = None) -> pd.DataFrame:
    """Spend today, month to date and projected for the month, estimated and billed,
    per endpoint and in total (last row, ``TOTAL``).

    Estimated projection: month to date plus the run rate of the last six hours (or of
    the time since ``data_since``, the first reading, when that is shorter; per endpoint
    when it maps endpoints to theirs) times the hours left in the month. Billed rows lag
    (a bill arrives a day late), so each endpoint's are projected from the end of its
    newest billed period. ``billed_minus_estimated``
    compares both over the same billed days, so the lag does not look like a saving.
    Billed columns are NaN for an endpoint without billed rows this month; the total
    sums the endpoints that have them.
    """
    if costs.empty:
        empty = {c: [float("nan") if "billed" in c else 0.0] for c in _SPEND_COLUMNS}
        return pd.DataFrame(empty, index=pd.Index([TOTAL], name="endpoint"))
    today, first = day_start(now), month_start(now)
    frame = pd.DataFrame(
        {
            "today_estimated": _sum_by_endpoint(costs, "estimated", today, now),
            "today_billed": _sum_by_endpoint(costs, "billed", today, now),
            "month_estimated": _sum_by_endpoint(costs, "estimated", first, now),
            "month_billed": _sum_by_endpoint(costs, "billed", first, now),
        }
    )
    billed = costs[
        (costs["source"] == "billed") & (costs["period_start"] >= first) & (costs["period_start"] < now)
    ]
    # Per endpoint, the end of its newest billed period (bills lag, and not every
    # endpoint is billed separately: those without a bill have no billed figures).
    billed_until = pd.to_datetime(billed.groupby("endpoint")["period_end"].max(), utc=True).clip(upper=now)
    hours = month_hours(now)
    frame["projected_estimated"] = frame["month_estimated"] + _run_rate(costs, now, data_since).reindex(
        frame.index
    ).fillna(0.0) * _hours(first + timedelta(hours=hours) - now)
    covered = (billed_until - first).dt.total_seconds() / 3600
    frame["projected_billed"] = frame["month_billed"] * hours / covered.clip(lower=1.0)
    frame["billed_minus_estimated"] = frame["month_billed"] - _estimated_until(
        costs, first, billed_until
    ).reindex(frame.index).fillna(0.0)
    frame = frame.sort_index()
    for column in ("today_estimated", "month_estimated", "projected_estimated"):
        frame[column] = frame[column].fillna(0.0)
    frame.loc[frame["month_billed"].notna(), "today_billed"] = frame["today_billed"].fillna(0.0)
    frame.loc[TOTAL] = frame.sum(min_count=1)
    frame.index.name = "endpoint"
    return frame[_SPEND_COLUMNS]


def _run_rate(costs: pd.DataFrame, now: datetime, data_since: DataSince) -> pd.Series:
    """Estimated USD per hour per endpoint over the run-rate window. Estimated rows are
    hourly, so the window is widened to whole hours and the spend in it spread over the
    time it really covers (from the endpoint's first reading at the earliest)."""
    spent = _sum_by_endpoint(costs, "estimated", run_rate_start(now), now)
    if not isinstance(data_since, Mapping):
        return spent / run_rate_hours(now, data_since)
    hours = [run_rate_hours(now, data_since.get(str(name))) for name in spent.index]
    return spent / pd.Series(hours, index=spent.index, dtype=float)


def late_starters(costs: pd.DataFrame, now: datetime) -> dict[str, datetime]:
    """Endpoints whose estimated spend begins inside the run rate's window (none before
    it in ``costs``), each with where its first reading is to be looked for: the start
    of its first row there, less ``MAX_HOLD`` (a reading held into an hour bears on it).
    Their run rate must be taken over their own time."""
    estimated = costs[costs["source"] == "estimated"]
    window = run_rate_start(now)
    before = set(estimated.loc[estimated["period_start"] < window, "endpoint"])
    inside = estimated[(estimated["period_start"] >= window) & (estimated["period_start"] < now)]
    firsts = inside.groupby("endpoint")["period_start"].min()
    return {
        str(name): start.to_pydatetime() - MAX_HOLD for name, start in firsts.items() if name not in before
    }


def _estimated_until(costs: pd.DataFrame, first: datetime, until: pd.Series) -> pd.Series:
    """Estimated USD per endpoint from ``first`` up to each endpoint's ``until``."""
    estimated = costs[(costs["source"] == "estimated") & (costs["period_start"] >= first)]
    estimated = estimated[estimated["endpoint"].isin(until.index)]
    if estimated.empty:
        return pd.Series(dtype=float)
    cutoff = estimated["endpoint"].map(until)
    return estimated[estimated["period_end"] <= cutoff].groupby("endpoint")["amount"].sum()


def _hours(span: timedelta) -> float:
    return span / timedelta(hours=1)


def cost_in_range(costs: pd.DataFrame, start: datetime, end: datetime) -> pd.Series:
    """Estimated USD per endpoint for periods starting in ``[start, end)``."""
    return _sum_by_endpoint(costs, "estimated", start, end)


def tokens_served(series: pd.DataFrame) -> pd.DataFrame:
    """``prompt`` and ``generated`` tokens per endpoint: the sum of the counted buckets
    (a bucket with no reading, e.g. at zero replicas or while nothing was read, counts
    nothing: a gap stays a gap)."""
    counts = series[series["metric"].isin(TOKEN_METRICS)]
    totals = counts.groupby(["endpoint", "metric"])["value"].sum().unstack("metric")
    totals = totals.reindex(columns=list(TOKEN_METRICS)).fillna(0.0)
    totals.columns = ["prompt", "generated"]
    return totals


def tokens_per_bucket(series: pd.DataFrame) -> pd.Series:
    """Tokens served per bucket of the series (minutes or hours) by all endpoints together."""
    counts = series[series["metric"].isin(TOKEN_METRICS)]
    return counts["value"].groupby(counts["time"]).sum()


def tokens_per_hour(series: pd.DataFrame) -> pd.Series:
    """Tokens served per hour by all endpoints together (a trend line)."""
    counts = series[series["metric"].isin(TOKEN_METRICS)]
    return counts["value"].groupby(counts["time"].dt.floor("h")).sum()


def hours_read(series: pd.DataFrame, bucket_seconds: float) -> float:
    """Hours from the first bucket with a token reading to the end of the last: the span
    a volume was observed over (a 30-day range over 7 days of data is 7 days)."""
    times = series.loc[series["metric"].isin(TOKEN_METRICS), "time"]
    if times.empty:
        return 0.0
    return ((times.max() - times.min()).total_seconds() + bucket_seconds) / 3600


def cost_per_1k_tokens(cost: pd.Series, tokens: pd.Series) -> pd.Series:
    """USD per 1,000 tokens per endpoint; NaN where no token was served."""
    served = tokens.where(tokens > 0)
    return (cost.reindex(served.index).fillna(0.0) / served * 1000).reindex(cost.index.union(served.index))


def hourly_cost(costs: pd.DataFrame) -> pd.DataFrame:
    """Estimated USD per (endpoint, hour): the hourly cost rows, summed per hour
    (``usd``); ``partial`` marks an hour still being estimated (its row ends before the
    hour does: the current hour), and ``usd_per_hour`` is its rate so far (for a whole
    hour, ``usd``)."""
    rows = costs[costs["source"] == "estimated"].copy()
    rows["time"] = rows["period_start"].dt.floor("h")
    out = rows.groupby(["endpoint", "time"], as_index=False).agg(
        usd=("amount", "sum"), until=("period_end", "max")
    )
    covered = ((out["until"] - out["time"]) / pd.Timedelta(hours=1)).clip(lower=1 / 60, upper=1.0)
    out["partial"] = covered < 1.0
    out["usd_per_hour"] = out["usd"] / covered
    return out.drop(columns="until")


def hourly_metrics(series: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (endpoint, hour) and one column per metric (hourly means)."""
    rows = series[series["metric"].isin(metrics)].copy()
    rows["time"] = rows["time"].dt.floor("h")
    table = rows.pivot_table(index=["endpoint", "time"], columns="metric", values="value", aggfunc="mean")
    return table.reindex(columns=metrics).reset_index()


def bucketed_metrics(series: pd.DataFrame, metrics: list[str], bucket_s: float) -> pd.DataFrame:
    """One row per (endpoint, bucket of ``bucket_s`` seconds) and one column per metric (means)."""
    rows = series[series["metric"].isin(metrics)].copy()
    rows["time"] = rows["time"].dt.floor(pd.Timedelta(seconds=bucket_s))
    table = rows.pivot_table(index=["endpoint", "time"], columns="metric", values="value", aggfunc="mean")
    return table.reindex(columns=metrics).reset_index()


def bucket_cost(
    series: pd.DataFrame, prices: Mapping[str, GpuHourPrice | TokenPrice], bucket_s: float
) -> pd.DataFrame:
    """What each bucket cost, from the counted increases in it times the endpoint's
    price, priced as the collector's estimate prices an hour (``inferplane.money``): the
    buckets of a whole hour add up to its estimated cost row.

    ``series``: counts per bucket of ``bucket_s`` seconds (``ready_replica_seconds`` for a
    GPU-hour price, ``prompt_tokens`` and ``generated_tokens`` for a per-token one). Out:
    ``endpoint, time, usd, usd_per_hour`` (``usd`` times the buckets in an hour). Only
    endpoints with a price and every count it needs in ``series`` are in it (a
    gauge-only source has no counts: its cost is known by the hour only); a bucket
    without a count reading has no row (unknown, not $0)."""
    read = set(series[["endpoint", "metric"]].drop_duplicates().itertuples(index=False, name=None))
    units = []
    for endpoint, price in prices.items():
        if isinstance(price, GpuHourPrice):
            rate = {"ready_replica_seconds": gpu_cost(1.0, price.gpu_per_hour_usd, price.gpus_per_replica)}
        else:
            rate = {
                "prompt_tokens": token_cost(1.0, 0.0, price.input_per_1k_usd, price.output_per_1k_usd),
                "generated_tokens": token_cost(0.0, 1.0, price.input_per_1k_usd, price.output_per_1k_usd),
            }
        if all((endpoint, metric) in read for metric in rate):
            units += [(endpoint, metric, usd) for metric, usd in rate.items()]
    # Linear in each count, so a count times what one unit of it costs (from the same
    # money functions) is its share of the bucket's cost.
    units_frame = pd.DataFrame(units, columns=["endpoint", "metric", "unit"])
    priced = series.merge(units_frame, on=["endpoint", "metric"])
    if priced.empty:
        return pd.DataFrame(
            {
                "endpoint": pd.Series(dtype=object),
                "time": pd.Series(dtype="datetime64[ns, UTC]"),
                "usd": pd.Series(dtype=float),
                "usd_per_hour": pd.Series(dtype=float),
            }
        )
    # A count not read in a bucket added nothing there: the bucket's cost is the sum of those read.
    priced["usd"] = priced["value"].astype(float) * priced["unit"]
    out = priced.groupby(["endpoint", "time"], as_index=False, sort=True)["usd"].sum()
    out["usd_per_hour"] = out["usd"] * 3600 / bucket_s
    return out


def timeline_cost(
    series: pd.DataFrame,
    hourly: pd.DataFrame,
    prices: Mapping[str, GpuHourPrice | TokenPrice],
    now: datetime,
    bucket_s: float,
) -> tuple[pd.DataFrame, list[str]]:
    """The cost line of a timeline in buckets of ``bucket_s`` seconds (under an hour):
    ``endpoint, time, usd_per_hour, partial`` and the endpoints drawn from hourly rows.

    Endpoints with counts and a price get ``bucket_cost`` up to the bucket ``now`` is in
    (left out: it is still being counted, and as $/h a few seconds of it would read as
    a drop). The others of ``hourly`` (``hourly_cost``'s rows) get each hour's rate in
    every bucket of it, up to ``now`` for the current hour (``partial``: its rate so
    far), so their line is a step per hour on the same axis."""
    step = pd.Timedelta(seconds=bucket_s)
    counted = bucket_cost(series, prices, bucket_s)
    counted = counted[counted["time"] + step <= now].assign(partial=False)
    fallback = hourly[~hourly["endpoint"].isin(set(counted["endpoint"]))]
    spread = [
        pd.DataFrame(
            {
                "endpoint": row.endpoint,
                "time": pd.date_range(
                    row.time, min(row.time + pd.Timedelta(hours=1), now), freq=step, inclusive="left"
                ),
                "usd_per_hour": row.usd_per_hour,
                "partial": row.partial,
            }
        )
        for row in fallback.itertuples(index=False)
    ]
    columns = ["endpoint", "time", "usd_per_hour", "partial"]
    out = pd.concat([counted[columns], *spread], ignore_index=True)
    return out.sort_values(["endpoint", "time"], ignore_index=True), sorted(set(fallback["endpoint"]))


def idle_hours(hourly: pd.DataFrame, cost: pd.DataFrame, floor: float = 0.1) -> pd.DataFrame:
    """Hours in which an endpoint had replicas up but its GPUs averaged below ``floor``
    utilization, with what each such hour cost (``endpoint, time, gpu_utilization,
    replicas, usd``)."""
    merged = hourly.merge(cost, on=["endpoint", "time"], how="left").fillna({"usd": 0.0})
    idle = merged[(merged["gpu_utilization"] < floor) & (merged["replicas"] > 0)]
    return idle[["endpoint", "time", "gpu_utilization", "replicas", "usd"]].reset_index(drop=True)


def off_hours_savings(
    replicas: pd.DataFrame,
    is_off_hours: Callable[[str, datetime], bool],
    uptime_floor: dict[str, int],
    replica_hour_usd: dict[str, float],
    bucket_hours: float = 1.0,
) -> pd.DataFrame:
    """What off-hours shutdowns saved per endpoint: in each off-hours bucket, the replicas
    the uptime floor would have kept minus the replicas observed (never below zero),
    times the bucket's hours and the replica's price. ``replicas``: ``endpoint, time,
    replicas`` per bucket of ``bucket_hours`` (an hour by default; a minute is 1/60);
    only endpoints in ``uptime_floor`` (those with a schedule) are counted;
    ``off_hours`` counts the off-hours buckets."""
    rows = replicas[replicas["endpoint"].isin(list(uptime_floor))].copy()
    if rows.empty:
        return pd.DataFrame(columns=["endpoint", "off_hours", "replica_hours_saved", "usd_saved"])
    rows["off"] = [
        is_off_hours(e, t.to_pydatetime()) for e, t in zip(rows["endpoint"], rows["time"], strict=True)
    ]
    rows = rows[rows["off"]]
    # As floats: mapping an empty string column (no off-hours bucket) keeps its string
    # dtype, and a string minus the replicas is an error, not an empty sum.
    floor = rows["endpoint"].map(uptime_floor).astype(float)
    rows["saved"] = (floor - rows["replicas"]).clip(lower=0) * bucket_hours
    rows["usd"] = rows["saved"] * rows["endpoint"].map(replica_hour_usd).astype(float)
    out = rows.groupby("endpoint").agg(
        off_hours=("off", "size"), replica_hours_saved=("saved", "sum"), usd_saved=("usd", "sum")
    )
    return out.reset_index()


def firing_now(events: pd.DataFrame) -> pd.DataFrame:
    """Alerts whose newest transition is "firing" (``events`` oldest first)."""
    if events.empty:
        return events
    newest = events.groupby("fingerprint", sort=False).tail(1)
    return newest[newest["status"] == "firing"].reset_index(drop=True)
