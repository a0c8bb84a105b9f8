"""Alerts: those firing now, every transition in the range, and their deliveries (the
channel's name and the outcome; a channel's URL or address is never stored nor shown)."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import data, figures, ui
from dashboard.filters import View

_LOOKBACK = timedelta(days=90)  # how far back a still-firing alert is looked for


def body(view: View) -> None:
    firing = figures.firing_now(data.alert_events(view.url, view.now - _LOOKBACK, view.end))
    events = data.alert_events(view.url, view.start, view.end)
    sent = data.deliveries(view.url, view.start, view.end)
    if not firing.empty:
        firing = firing[firing["endpoint"].isin(view.endpoints)]
    if not events.empty:
        events = events[events["endpoint"].isin(view.endpoints)]
    if not sent.empty:  # the deliveries of the alerts shown (the endpoint filter applies)
        keys = events.drop_duplicates("fingerprint").set_index("fingerprint")[["endpoint", "rule"]]
        sent = sent.join(keys, on="fingerprint", how="inner")
    resolved = int((events["status"] == "resolved").sum()) if not events.empty else 0
    failed = int((~sent["ok"].astype(bool)).sum()) if not sent.empty else 0
    cols = st.columns(3)
    cols[0].metric("Firing now", f"{len(firing)}", border=True)
    cols[1].metric(f"Resolved ({view.range_label.lower()})", f"{resolved}", border=True)
    cols[2].metric("Failed delivery attempts", f"{failed}", border=True)

    st.subheader("Firing now")
    if firing.empty:
        st.success("Nothing is firing.")
    else:
        ui.table(
            firing[["time", "endpoint", "rule", "summary"]],
            "alerts-firing",
            {"time": ui.time_column("firing since")},
            wrap=True,
        )

    st.subheader("Firing and resolved")
    if events.empty:
        st.info("No alert fired or resolved in this range.")
        return
    ui.table(
        events.sort_values("time", ascending=False).drop(columns="fingerprint"),
        "alert-events",
        {"summary": st.column_config.TextColumn("summary", width="large")},
        wrap=True,
    )

    st.subheader("Deliveries")
    if sent.empty:
        st.info("No notification was sent for these alerts (no channel configured, or silenced).")
        return
    sent = sent.rename(columns={"error": "problem"})[
        ["time", "endpoint", "rule", "channel", "attempt", "ok", "problem"]
    ]
    ui.table(
        sent.sort_values("time", ascending=False),
        "alert-deliveries",
        {
            "ok": st.column_config.CheckboxColumn("delivered"),
            "problem": st.column_config.TextColumn("problem", width="large"),
        },
    )


ui.page("Alerts", body)
