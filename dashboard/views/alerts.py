"""Alerts: those firing now, every transition in the range, and the deliveries in the
range (the channel's name and the outcome; addresses and URLs in a delivery's problem
are redacted by ``dashboard.data``). Scaling notices are events, not alerts: they never
fire, so nothing here counts them; the actions and their change of spend are on the
Autoscaler page."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import data, figures, inbox, ui
from dashboard.filters import View

_LOOKBACK = timedelta(days=90)  # how far back a still-firing alert is looked for
_PAYLOADS_SHOWN = 10


def body(view: View) -> None:
    firing = figures.firing_now(data.alert_events(view.url, view.now - _LOOKBACK, view.end))
    events = data.alert_events(view.url, view.start, view.end)
    sent = data.deliveries(view.url, view.start, view.end)
    if not firing.empty:
        firing = firing[firing["endpoint"].isin(view.endpoints)]
    if not events.empty:
        events = events[events["endpoint"].isin(view.endpoints)]
    if not sent.empty:  # named by their alert, which may have started before the range
        keys = data.alert_names(view.url, tuple(sorted(set(sent["fingerprint"]))))
        sent = sent.join(keys, on="fingerprint", how="inner")
        sent = sent[sent["endpoint"].isin(view.endpoints)].reset_index(drop=True)
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
    else:
        ui.table(
            events.sort_values("time", ascending=False).drop(columns="fingerprint"),
            "alert-events",
            {"summary": st.column_config.TextColumn("summary", width="large")},
            wrap=True,
        )

    _received(view)
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


def _received(view: View) -> None:
    """What the local mail catcher and webhook receiver got (``inferplane up`` starts them
    for the built-in channels), each with its payload as it arrived."""
    got = inbox.received(view.url)
    if got.empty:
        return
    st.subheader("Received by the local mail catcher and webhook receiver")
    ui.table(
        got,
        "alerts-received",
        {
            "time": ui.time_column("received"),
            "subject": st.column_config.TextColumn("subject", width="medium"),
            "payload": st.column_config.TextColumn("payload", width="large"),
        },
        wrap=True,
    )
    # The newest payloads whole, one expander each: a table cell shows a payload's start only.
    for _, item in got.head(_PAYLOADS_SHOWN).iterrows():
        with st.expander(f"{item['time']:%H:%M:%S} {item['via']}: {item['subject']}"):
            st.code(item["payload"], language="json" if item["via"] == "webhook" else None)


ui.page("Alerts", body)
