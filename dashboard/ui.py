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

__all__ = ["EMPTY_STATE", "count", "load_config", "money", "ms", "page", "pct", "table"]

EMPTY_STATE = (
    "**No data in the store yet.** Start collecting with `inferplane collect --config "
    "inferplane.yaml`, run the whole loop with `inferplane up`, or look around with "
    "sample data: `inferplane dashboard --sample-data`."
)


def money(value: float | None, digits: int = 2) -> str:
    """``$1,234.56``; an em dash for no value."""
    return "—" if value is None or not math.isfinite(value) else f"${value:,.{digits}f}"


def ms(seconds: float | None) -> str:
    return "—" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1000:,.0f} ms"


def pct(share: float | None) -> str:
    return "—" if share is None or not math.isfinite(share) else f"{share:.0%}"


def count(value: float) -> str:
    """Whole numbers up to a million, then ``4.36 M``, ``1.2 B``: a metric card stays readable."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= limit:
            return f"{value / limit:,.2f} {suffix}"
    return f"{value:,.0f}"


def table(frame: pd.DataFrame, name: str, column_config: dict[str, Any] | None = None) -> None:
    """Show ``frame`` with a button that downloads it as ``name``.csv (times in UTC to the
    minute on screen, in full in the file)."""
    config = {
        column: st.column_config.DatetimeColumn(column, format="YYYY-MM-DD HH:mm", timezone="UTC")
        for column in frame.columns
        if pd.api.types.is_datetime64_any_dtype(frame[column])
    }
    config.update(column_config or {})
    st.dataframe(frame, hide_index=True, column_config=config, width="stretch")
    st.download_button(
        f"Download {name}.csv",
        frame.to_csv(index=False).encode("utf-8"),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"download-{name}",
    )


def load_config() -> InferplaneConfig | None:
    """The dashboard's config, or None (with a warning naming the problem when invalid)."""
    try:
        return data.config()
    except (ConfigError, OSError) as problem:
        st.warning(f"The config was not loaded, so prices, targets and schedules are missing: {problem}")
        return None


def page(title: str, body: Callable[[View], None]) -> None:
    """Draw a page: its title, the empty state when the store has nothing, else ``body``
    (rerun every few seconds as a fragment while auto-refresh is on)."""
    st.title(title)
    current = view()
    if not data.has_data(current.url):
        st.info(EMPTY_STATE)
        return

    def run() -> None:
        body(view())  # a fresh view: a refresh moves "now" on

    if current.refresh_s:
        st.fragment(run, run_every=current.refresh_s)()
    else:
        run()
