"""Small building blocks the pages share: units, tables with CSV download, the empty
state, the config and auto-refresh."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.filters import View, view
from inferplane.config import ConfigError, InferplaneConfig

__all__ = [
    "EMPTY_STATE",
    "MISSING",
    "TIME_FORMAT",
    "count",
    "csv_bytes",
    "load_config",
    "money",
    "ms",
    "page",
    "pct",
    "table",
    "time_column",
]

EMPTY_STATE = (
    "**No data in the store yet.** Start collecting with `inferplane collect --config "
    "inferplane.yaml`, run the whole loop with `inferplane up`, or look around with "
    "sample data: `inferplane dashboard --sample-data`."
)


MISSING = "—"  # what a card or a table cell shows for no value (never "None" or "nan")
# Table times: UTC to the minute, saying so ("2026-11-18 19:00 UTC"; moment.js format).
TIME_FORMAT = "YYYY-MM-DD HH:mm [UTC]"
# Streamlit wraps text cells only in rows taller than 4rem (64 px): three lines of text.
_WRAPPED_ROW_PX = 66


def money(value: float | None, digits: int = 2) -> str:
    """``$1,234.56``; an em dash for no value."""
    return MISSING if value is None or not math.isfinite(value) else f"${value:,.{digits}f}"


def ms(seconds: float | None) -> str:
    return MISSING if seconds is None or not math.isfinite(seconds) else f"{seconds * 1000:,.0f} ms"


def pct(share: float | None) -> str:
    return MISSING if share is None or not math.isfinite(share) else f"{share:.0%}"


def count(value: float) -> str:
    """Whole numbers up to a million, then ``4.36 M``, ``1.2 B``: a metric card stays readable."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= limit:
            return f"{value / limit:,.2f} {suffix}"
    return f"{value:,.0f}"


def time_column(label: str, **options: Any) -> Any:
    """A table column of times shown as ``2026-11-18 19:00 UTC``."""
    return st.column_config.DatetimeColumn(label, format=TIME_FORMAT, timezone="UTC", **options)


def table(
    frame: pd.DataFrame, name: str, column_config: dict[str, Any] | None = None, *, wrap: bool = False
) -> None:
    """Show ``frame`` with a button that downloads it as ``name``.csv: times in UTC to
    the minute and missing values as a dash on screen, ISO 8601 in the file. ``wrap``
    gives rows room for three lines, so that long text (reasons, summaries) wraps."""
    config: dict[str, Any] = {
        column: time_column(column)
        for column in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[column])
    }
    for column, given in (column_config or {}).items():
        config[column] = _merged(config.get(column), given)
    st.dataframe(
        frame,
        hide_index=True,
        column_config=config,
        width="stretch",
        placeholder=MISSING,
        row_height=_WRAPPED_ROW_PX if wrap else None,
    )
    st.download_button(
        f"Download {name}.csv",
        csv_bytes(frame),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"download-{name}",
    )


def _merged(default: Any, given: Any) -> Any:
    """``given``'s settings over ``default``'s (a page naming a time column keeps the
    time format unless it sets its own)."""
    if not isinstance(default, dict) or not isinstance(given, dict):
        return given
    merged = {**default, **{k: v for k, v in given.items() if v is not None and k != "type_config"}}
    mine, theirs = default.get("type_config") or {}, given.get("type_config") or {}
    if mine.get("type") == theirs.get("type"):
        merged["type_config"] = {**mine, **{k: v for k, v in theirs.items() if v is not None}}
    elif theirs:
        merged["type_config"] = theirs
    return merged


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV for machines: times in ISO 8601 UTC (``2026-11-18T19:00:00Z``),
    missing values empty, trend columns (lists, drawn as sparklines) left out."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
            out[column] = utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif values.dtype == object and values.map(lambda v: isinstance(v, list)).any():
            out = out.drop(columns=column)
    return out.to_csv(index=False).encode("utf-8")


def load_config() -> InferplaneConfig | None:
    """The dashboard's config, or None (with a warning naming the problem when invalid)."""
    try:
        return data.config()
    except (ConfigError, OSError) as problem:
        st.warning(f"The config was not loaded, so prices, targets and schedules are missing: {problem}")
        return None


def page(title: str, body: Callable[[View], None]) -> None:
    """Draw a page: its title, then the empty state when the store has nothing, else
    ``body``; both rerun every few seconds as a fragment while auto-refresh is on (a page
    left open on a new store shows the first data without a reload)."""
    st.title(title)
    current = view()

    def run() -> None:
        fresh = view()  # a refresh moves "now" on
        if data.has_data(fresh.url):
            body(fresh)
        else:
            st.info(EMPTY_STATE)

    if current.refresh_s:
        st.fragment(run, run_every=current.refresh_s)()
    else:
        run()
