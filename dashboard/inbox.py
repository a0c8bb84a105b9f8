"""What the local catchers received (the mail catcher and webhook receiver that
``inferplane up`` starts for the built-in configuration), read from the store's
``control_state`` key ``"inbox"`` for the Alerts page.

A cached read like those of ``dashboard.data``, kept apart because that module belongs
to the dashboard's store reads, which are moving behind the store's read functions.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data
from inferplane.store import StoreError

__all__ = ["INBOX_KEY", "received"]

# The key commands.up_catchers writes (the dashboard imports the core only; a test
# keeps the two equal).
INBOX_KEY = "inbox"
_COLUMNS = ["time", "via", "subject", "to", "payload"]


@st.cache_data(ttl=data.TTL_S, show_spinner=False)
def received(url: str) -> pd.DataFrame:
    """One row per message received, newest first: when, through which catcher, its
    subject (or the webhook's path and status), the recipients, the payload as text."""
    try:
        saved = data._store(url).load_state(INBOX_KEY) or {}
    except StoreError:
        saved = {}  # a store without tables has received nothing
    rows = [_row(item) for item in saved.get("received", [])]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values("time", ascending=False).reset_index(drop=True)


def _row(item: dict[str, Any]) -> dict[str, Any]:
    payload = item.get("payload", "")
    text = payload if isinstance(payload, str) else json.dumps(payload, indent=2)
    return {
        "time": item.get("time"),
        "via": item.get("via", ""),
        "subject": item.get("subject", ""),
        "to": ", ".join(item.get("recipients", [])),
        "payload": text,
    }
