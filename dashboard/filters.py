"""The sidebar filters every page shares: time range, endpoints, auto-refresh.

The widgets live in the entry script (``app.py``), so their values survive a page
switch; pages read them through ``view()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st

from dashboard import data
from inferplane.config import ConfigError

__all__ = ["RANGES", "REFRESH_CHOICES", "View", "sidebar", "view"]

RANGES = {
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
DEFAULT_RANGE = "Last 7 days"
REFRESH_CHOICES = {"30 s": 30, "1 min": 60, "5 min": 300}
_RANGE_KEY, _ENDPOINTS_KEY, _REFRESH_KEY, _EVERY_KEY = "range", "endpoints", "auto_refresh", "refresh_every"


@dataclass(frozen=True)
class View:
    """What a page shows: ``[start, end)``, the endpoints, the store and its resolution."""

    url: str
    now: datetime
    start: datetime
    end: datetime
    endpoints: tuple[str, ...]  # the chosen ones (all when none is chosen)
    all_endpoints: tuple[str, ...]  # every known one (colours stay the same across filters)
    refresh_s: int | None
    range_label: str  # "Last 7 days"

    @property
    def resolution(self) -> str:
        return data.resolution_for(self.start, self.end)


def known_endpoints(url: str) -> tuple[str, ...]:
    """Endpoints in the store and in the config, sorted."""
    names = set(data.endpoints(url)) if data.has_data(url) else set()
    try:
        settings = data.config()
    except (ConfigError, OSError):  # the page reports a bad config; the filter lists the store's
        settings = None
    if settings is not None:
        names |= {endpoint.name for endpoint in settings.endpoints}
    return tuple(sorted(names))


def sidebar() -> None:
    """Draw the filters (call once per run, from the entry script)."""
    with st.sidebar:
        st.selectbox("Time range", list(RANGES), index=list(RANGES).index(DEFAULT_RANGE), key=_RANGE_KEY)
        st.multiselect(
            "Endpoints", known_endpoints(data.store_url()), key=_ENDPOINTS_KEY, placeholder="All endpoints"
        )
        st.toggle("Auto-refresh", key=_REFRESH_KEY)
        if st.session_state.get(_REFRESH_KEY):
            st.selectbox("Every", list(REFRESH_CHOICES), key=_EVERY_KEY)


def view() -> View:
    """The current filters and clock (read again on every run, so a refresh moves on)."""
    url, now = data.store_url(), data.now()
    label = str(st.session_state.get(_RANGE_KEY, DEFAULT_RANGE))
    span = RANGES[label]
    everything = known_endpoints(url)
    chosen = tuple(name for name in st.session_state.get(_ENDPOINTS_KEY, []) if name in everything)
    refresh = (
        REFRESH_CHOICES[st.session_state.get(_EVERY_KEY, "1 min")]
        if st.session_state.get(_REFRESH_KEY)
        else None
    )
    # The end is the next minute: the minute now is in is part of the view.
    end = now + timedelta(minutes=1)
    return View(url, now, end - span, end, chosen or everything, everything, refresh, label)
