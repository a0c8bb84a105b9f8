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

__all__ = ["DEFAULT_RANGE", "RANGES", "REFRESH_CHOICES", "View", "default_range", "sidebar", "view"]

RANGES = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
}
DEFAULT_RANGE = "Last 7 days"  # the longest range chosen for the user (30 days on request)
REFRESH_CHOICES = {"30 s": 30, "1 min": 60, "5 min": 300}
_DEFAULT_EVERY = "1 min"
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


def default_range(url: str, now: datetime) -> str:
    """The shortest range that holds everything the store has, up to ``DEFAULT_RANGE``:
    a store ten minutes old opens on its ten minutes, by the minute, not on a week."""
    since = data.data_since(url) if data.has_data(url) else None
    if since is None:
        return DEFAULT_RANGE
    age = now + timedelta(minutes=1) - since
    limit = RANGES[DEFAULT_RANGE]
    return next((label for label, span in RANGES.items() if age <= span <= limit), DEFAULT_RANGE)


def sidebar() -> None:
    """Draw the filters (call once per run, from the entry script)."""
    with st.sidebar:
        fitting = default_range(data.store_url(), data.now())
        st.selectbox("Time range", list(RANGES), index=list(RANGES).index(fitting), key=_RANGE_KEY)
        st.multiselect(
            "Endpoints", known_endpoints(data.store_url()), key=_ENDPOINTS_KEY, placeholder="All endpoints"
        )
        st.toggle("Auto-refresh", key=_REFRESH_KEY)
        if st.session_state.get(_REFRESH_KEY):
            every = list(REFRESH_CHOICES)
            st.selectbox("Every", every, index=every.index(_DEFAULT_EVERY), key=_EVERY_KEY)


def view() -> View:
    """The current filters and clock (read again on every run, so a refresh moves on)."""
    url, now = data.store_url(), data.now()
    label = str(st.session_state.get(_RANGE_KEY) or default_range(url, now))
    span = RANGES[label]
    everything = known_endpoints(url)
    chosen = tuple(name for name in st.session_state.get(_ENDPOINTS_KEY, []) if name in everything)
    refresh = (
        REFRESH_CHOICES[st.session_state.get(_EVERY_KEY, _DEFAULT_EVERY)]
        if st.session_state.get(_REFRESH_KEY)
        else None
    )
    # The end is the next minute: the minute now is in is part of the view.
    end = now + timedelta(minutes=1)
    return View(url, now, end - span, end, chosen or everything, everything, refresh, label)
