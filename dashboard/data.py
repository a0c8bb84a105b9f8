"""Every store read of the dashboard, cached for a short time (``TTL_S``).

Where the dashboard looks (environment variables, set by ``inferplane dashboard``):

- ``INFERPLANE_DASHBOARD_STORE``: the store URL (a variable, not argv: a PostgreSQL URL
  may hold a password). Unset: the embedded SQLite default.
- ``INFERPLANE_DASHBOARD_CONFIG``: an ``inferplane.yaml`` (prices, targets, schedules);
  optional.
- ``INFERPLANE_DASHBOARD_NOW``: an ISO time used as "now" (tests, or a look at an old
  store); unset: the clock.

Read-only: the store is opened with a plain engine, never migrated (a dashboard must not
change a production schema), and nothing is written. Every query is the store's
(``Store`` read methods); this module caches them and makes frames. Series come from the
rollups (1m up to a day, 1h beyond, 1d for the overview's trends beyond a week), all
endpoints and metrics of a page at once.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from dashboard import figures, rollups
from dashboard.redact import redact
from inferplane.config import InferplaneConfig, load_config
from inferplane.schedule import OneOffDowntime, downtime_key
from inferplane.store import Store, default_store_url
from inferplane.store.engine import create_store_engine, read_only
from inferplane.store.reads import DECISION_COLUMNS

__all__ = [
    "ADDITIVE",
    "CONFIG_ENV",
    "NOW_ENV",
    "STORE_ENV",
    "TTL_S",
    "alert_events",
    "alert_names",
    "bucket_seconds",
    "config",
    "config_path",
    "cost_frame",
    "data_since",
    "deliveries",
    "downtimes",
    "endpoints",
    "first_reading",
    "has_data",
    "latest",
    "now",
    "replays",
    "resolution_for",
    "scaling_events",
    "series",
    "store_url",
    "trend_resolution",
]

STORE_ENV, CONFIG_ENV, NOW_ENV = (
    "INFERPLANE_DASHBOARD_STORE",
    "INFERPLANE_DASHBOARD_CONFIG",
    "INFERPLANE_DASHBOARD_NOW",
)
TTL_S = 30
# Metrics that add up over replicas (an endpoint's token rate is its replicas' sum);
# the others (utilization, latency) are averaged, as the alert readings do.
ADDITIVE = frozenset(
    {
        "prompt_tokens_per_second",
        "generated_tokens_per_second",
        "requests_per_second",
        "prompt_tokens",
        "generated_tokens",
        "requests",
        "ready_replica_seconds",
        "replicas",
        "ready_replicas",
        "requests_waiting",
        "requests_running",
        "gpu_memory_used_bytes",
    }
)


def store_url() -> str:
    return os.environ.get(STORE_ENV) or default_store_url()


def config_path() -> Path | None:
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def now() -> datetime:
    """Now, to the minute (so that cached reads are shared within a minute)."""
    fixed = os.environ.get(NOW_ENV)
    moment = datetime.fromisoformat(fixed) if fixed else datetime.now(UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def config() -> InferplaneConfig | None:
    """The config named by ``CONFIG_ENV``, or None; raises ``ConfigError`` when invalid."""
    path = config_path()
    if path is None:
        return None
    stat = path.stat()
    return _config(str(path), stat.st_mtime_ns, stat.st_size)


# Kept for the process, keyed by the file's identity: an edited file is read again.
@functools.lru_cache(maxsize=4)
def _config(path: str, _mtime_ns: int, _size: int) -> InferplaneConfig:
    return load_config(path)


def _dispose(engine: sa.Engine) -> None:
    engine.dispose()


# Disposed when the cache lets it go (cleared, or evicted): its pooled connections are
# closed then, not left to the garbage collector (which warns about unclosed ones).
@st.cache_resource(show_spinner=False, on_release=_dispose)
def _engine(url: str) -> sa.Engine:
    return read_only(create_store_engine(url))


def _store(url: str) -> Store:
    return Store(_engine(url))


def resolution_for(start: datetime, end: datetime) -> str:
    """Minute buckets up to a day, hourly beyond (a day is 1,440 points a series)."""
    return "1m" if end - start <= timedelta(days=1) else "1h"


def trend_resolution(start: datetime, end: datetime) -> str:
    """The overview's trend lines and means: ``resolution_for``, but daily beyond a week
    (a month of 50 endpoints is 216,000 hourly values of six metrics, 9,000 daily ones;
    a trend line a few pixels wide shows no more)."""
    return "1d" if end - start > timedelta(days=7) else resolution_for(start, end)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def data_since(url: str) -> datetime | None:
    """The oldest time the store holds readings or costs for (None: empty or no tables)."""
    store = _store(url)
    return store.data_since() if store.has_schema() else None


def bucket_seconds(resolution: str) -> float:
    return {"raw": 0.0, "1m": 60.0, "1h": 3600.0, "1d": 86400.0}[resolution]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def has_data(url: str) -> bool:
    """Whether the store has its tables and at least one sample or cost row."""
    return _store(url).has_data()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def endpoints(url: str) -> list[str]:
    """Every endpoint with raw readings (two days), hourly rollups or costs, sorted."""
    return _store(url).endpoint_names()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def series(
    url: str,
    names: tuple[str, ...],
    metrics: tuple[str, ...],
    start: datetime,
    end: datetime,
    resolution: str,
) -> pd.DataFrame:
    """``endpoint, metric, time, value`` of every (endpoint, metric): per bucket, the sum
    over replicas for ``ADDITIVE`` metrics and counts, else the mean; token and request
    rates weighted by the share of the bucket each replica was read in
    (``dashboard.rollups``). Buckets not rolled up yet (the current hour and minute)
    come from the finer tables and raw samples, so they count too."""
    if resolution == "raw":
        return _raw_series(url, names, metrics, start, end)
    rows = _store(url).read_bucket_rows(list(names), list(metrics), start, end, resolution)
    if not rows:
        return _empty_series()
    frame = rollups.combine(pd.DataFrame(rows, columns=rollups.ROW_COLUMNS), ADDITIVE)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def _raw_series(
    url: str, names: tuple[str, ...], metrics: tuple[str, ...], start: datetime, end: datetime
) -> pd.DataFrame:
    """Per raw reading time: the sum over replicas for ``ADDITIVE`` metrics, else the mean."""
    rows = _store(url).read_raw_totals(list(names), list(metrics), start, end)
    if not rows:
        return _empty_series()
    frame = pd.DataFrame(rows, columns=["endpoint", "metric", "time", "total", "mean"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["value"] = frame["total"].where(frame["metric"].isin(ADDITIVE), frame["mean"]).astype(float)
    return frame[rollups.SERIES_COLUMNS]


def _empty_series() -> pd.DataFrame:
    """No readings, typed as readings are: the pages' ``.dt`` and arithmetic work on it."""
    return pd.DataFrame(columns=rollups.SERIES_COLUMNS).astype(
        {"endpoint": object, "metric": object, "time": "datetime64[ns, UTC]", "value": float}
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def first_reading(url: str, names: tuple[str, ...], since: datetime) -> datetime | None:
    """The oldest raw reading of ``names`` at or after ``since`` (None: none), from which
    a run rate may be taken: a store ten minutes old has ten minutes of spend to go on."""
    return _store(url).first_sample_time(list(names), since)


def first_readings(url: str, since: dict[str, datetime]) -> dict[str, datetime]:
    """Per endpoint, its oldest raw reading at or after the time given, where it has one."""
    found = {name: first_reading(url, (name,), at) for name, at in since.items()}
    return {name: at for name, at in found.items() if at is not None}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latest(url: str, names: tuple[str, ...], metric: str, at: datetime) -> dict[str, float]:
    """The newest reading of ``metric`` per endpoint within 30 minutes before ``at``
    (raw samples, summed or averaged over replicas as ``series`` does)."""
    found = _store(url).read_latest_totals(
        list(names), metric, at - timedelta(minutes=30), at + timedelta(minutes=1)
    )
    return {name: total if metric in ADDITIVE else mean for name, (_, total, mean) in found.items()}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def cost_frame(
    url: str, start: datetime, end: datetime, daily_between: tuple[datetime, datetime] | None = None
) -> pd.DataFrame:
    """Cost rows starting in ``[start, end)`` as a frame (``figures.cost_frame``).

    ``daily_between``: the whole UTC days between these two times come as one row per
    day, endpoint and source (their sum; service ``"*"``): any sum by period start whose
    bounds are midnights or outside the two times is unchanged."""
    daily = None
    if daily_between is not None:
        lo = _next_midnight(max(daily_between[0], start))
        hi = min(daily_between[1], end).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        daily = (lo, hi) if hi > lo else None
    return figures.cost_frame(_store(url).read_cost_table(start, end, daily=daily))


def _next_midnight(time: datetime) -> datetime:
    """``time`` when it is a UTC midnight, else the one after it."""
    day = time.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == time else day + timedelta(days=1)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def scaling_events(url: str, start: datetime, end: datetime, actions_only: bool = True) -> pd.DataFrame:
    """Scaling decisions in ``[start, end)``, oldest first; ``actions_only`` leaves out the
    holds (decisions that changed nothing: one per poll, most of the table)."""
    rows = _store(url).read_decisions(start, end, actions_only=actions_only)
    return _frame(rows, list(DECISION_COLUMNS))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alert_events(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Alert transitions in ``[start, end)``, oldest first."""
    rows = _store(url).read_alert_events(start, end)
    return _frame(rows, ["time", "fingerprint", "endpoint", "rule", "status", "summary"])


@st.cache_data(ttl=TTL_S, show_spinner=False)
def deliveries(url: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Delivery attempts in ``[start, end)`` by channel name, each error with its e-mail
    addresses and URLs redacted (an SMTP refusal names the refused recipients, a webhook's
    answer may quote its URL: the store keeps the channel's words as they were)."""
    rows = _store(url).read_deliveries(start, end)
    frame = _frame(rows, ["time", "fingerprint", "channel", "attempt", "ok", "error"])
    frame["error"] = frame["error"].map(redact, na_action="ignore")
    return frame


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alert_names(url: str, fingerprints: tuple[str, ...]) -> pd.DataFrame:
    """``endpoint, rule`` per alert fingerprint, from its transitions at any time (a
    delivery in the range may belong to an alert that started firing before it)."""
    rows = _store(url).read_alert_rules(list(fingerprints))
    frame = pd.DataFrame(rows, columns=["fingerprint", "endpoint", "rule"])
    return frame.drop_duplicates("fingerprint").set_index("fingerprint")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def replays(url: str) -> dict[str, dict[str, Any]]:
    """Every saved replay comparison (saved states ``replay:<name>``) by name."""
    saved = _store(url).load_states("replay:")
    return {key.removeprefix("replay:"): value for key, value in saved.items()}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def downtimes(url: str, names: tuple[str, ...]) -> dict[str, OneOffDowntime]:
    """The last one-off downtime of each endpoint that had one (``inferplane autoscaler
    off-hours``, or the demo's), open or over."""
    found = {name: _store(url).load_state(downtime_key(name)) for name in names}
    return {name: d for name, doc in found.items() if (d := OneOffDowntime.from_json(doc)) is not None}


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=columns)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)  # datetime64 even when empty
    return frame
