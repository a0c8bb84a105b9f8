"""Autoscaler: the decision log with reasons and each action's change of spend (the
scaling notices: ``+$2.40/h`` costs more, ``−$2.40/h`` saves), when each endpoint is up,
down or at a floor (from the config's schedules, and the one-off downtimes of ``inferplane
autoscaler off-hours`` or the demo), what off-hours shutdowns saved, how often the endpoint
went to zero and a request woke it, and the replay simulator's policy comparison."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, data, figures, ui
from dashboard.filters import View
from inferplane.config import Endpoint, GpuHourPrice, InferplaneConfig
from inferplane.schedule import OneOffDowntime, ScheduleFloor, floor_at, with_downtime


def _scheduled(
    settings: InferplaneConfig | None, names: list[str], downtimes: dict[str, OneOffDowntime]
) -> dict[str, Endpoint]:
    endpoints = settings.endpoints if settings else []
    return {
        e.name: e
        for e in endpoints
        if e.name in names and e.autoscaling and (e.autoscaling.schedules or e.name in downtimes)
    }


class _Floors:
    """``floor_at`` for many endpoints, computed once per distinct schedule and moment:
    endpoints often share a schedule, and 30 days ask for thousands of hours. A one-off
    downtime counts as a downtime window while it is open."""

    def __init__(self, endpoints: dict[str, Endpoint], downtimes: dict[str, OneOffDowntime]) -> None:
        self._endpoints = endpoints
        self._downtimes = downtimes
        self._signature = {
            name: e.autoscaling.model_dump_json(include={"schedules", "off_hours_replicas"})
            + f"/{e.min_replicas}"
            for name, e in endpoints.items()
            if e.autoscaling is not None
        }
        self._seen: dict[tuple[str, datetime], ScheduleFloor] = {}

    def at(self, name: str, moment: datetime) -> ScheduleFloor:
        downtime = self._downtimes.get(name)
        if downtime is not None and downtime.is_open(moment):
            key = (self._signature[name] + downtime.text(), moment)
        else:
            key, downtime = (self._signature[name], moment), None
        if key not in self._seen:
            endpoint = self._endpoints[name]
            assert endpoint.autoscaling is not None
            policy = with_downtime(endpoint.autoscaling, downtime, moment)
            self._seen[key] = floor_at(policy, endpoint.min_replicas, moment)
        return self._seen[key]

    def off_hours(self, name: str, moment: datetime) -> bool:
        return self.at(name, moment).off_hours


def _uptime_floor(endpoint: Endpoint) -> int:
    """The replicas kept while an uptime window is open (at least one)."""
    assert endpoint.autoscaling is not None
    floors = [
        w.min_replicas
        for w in endpoint.autoscaling.schedules
        if w.kind == "uptime" and w.min_replicas is not None
    ]
    return max([endpoint.min_replicas, 1, *floors])


def _signed_per_hour(change: float | None) -> str:
    """``+$2.40/h`` (costs more), ``−$2.40/h`` (saves, U+2212), a dash without a price."""
    if change is None or pd.isna(change):
        return ui.MISSING
    sign = "+" if change > 0.005 else "\u2212" if change < -0.005 else ""
    return f"{sign}${abs(change):,.2f}/h"


def _replica_prices(settings: InferplaneConfig | None) -> dict[str, float]:
    endpoints = settings.endpoints if settings else []
    return {e.name: e.price.replica_hour_usd for e in endpoints if isinstance(e.price, GpuHourPrice)}


def _decision_log(view: View, settings: InferplaneConfig | None) -> None:
    st.subheader("Decision log")
    holds = st.toggle("Show holds (decisions that changed nothing)", key="show_holds")
    events = data.scaling_events(view.url, view.start, view.end, actions_only=not holds)
    if not events.empty:
        events = events[events["endpoint"].isin(view.endpoints)]
    if events.empty:
        st.info(
            "No scaling decision in this range (the autoscaler records one per action, and a hold per poll)."
        )
        return
    shown = events.sort_values("time", ascending=False)
    prices = _replica_prices(settings)
    change = (shown["to_replicas"] - shown["from_replicas"]) * shown["endpoint"].map(prices)
    shown.insert(4, "cost_change", [_signed_per_hour(c) for c in change.where(shown["applied"].astype(bool))])
    ui.table(
        shown,
        "scaling-decisions",
        {
            "from_replicas": st.column_config.NumberColumn("from"),
            "to_replicas": st.column_config.NumberColumn("to"),
            "cost_change": st.column_config.TextColumn("$/h", help="+ costs more, \u2212 saves"),
            "reason": st.column_config.TextColumn("reason", width="large"),
            "dry_run": st.column_config.CheckboxColumn("dry run"),
        },
        wrap=True,
    )


def _schedules(
    scheduled: dict[str, Endpoint], downtimes: dict[str, OneOffDowntime], floors_of: _Floors, view: View
) -> None:
    st.subheader("Schedules")
    if not scheduled:
        st.info(
            "No endpoint in the config has `autoscaling.schedules` (or no config was given with "
            "`--config`), and none was taken off-hours by hand (`inferplane autoscaler off-hours`)."
        )
        return
    windows = [
        {
            "endpoint": name,
            "kind": w.kind,
            "when": w.when.text,
            "min_replicas": w.min_replicas,
            "off_hours_replicas": e.autoscaling.off_hours_replicas if e.autoscaling else 0,
        }
        for name, e in scheduled.items()
        for w in (e.autoscaling.schedules if e.autoscaling else [])
    ]
    windows += [
        {
            "endpoint": name,
            "kind": "downtime (one-off)",  # its text says from when until when
            "when": d.text(),
            "min_replicas": None,
            "off_hours_replicas": e.autoscaling.off_hours_replicas if e.autoscaling else 0,
        }
        for name, e in scheduled.items()
        if (d := downtimes.get(name)) is not None
    ]
    ui.table(
        pd.DataFrame(windows),
        "schedules",
        {
            "when": st.column_config.TextColumn("when", width="medium"),
            "min_replicas": st.column_config.NumberColumn("min replicas"),
            "off_hours_replicas": st.column_config.NumberColumn("off-hours replicas"),
        },
    )
    hours = [view.now.replace(minute=0) + timedelta(hours=h) for h in range(7 * 24)]
    floors = pd.DataFrame(
        [
            {"endpoint": name, "time": at, "floor": floors_of.at(name, at).floor}
            for name in scheduled
            for at in hours
        ]
    )
    colours = charts.endpoint_colours(view.all_endpoints)
    st.plotly_chart(charts.schedule_heatmap(floors, colours), key="schedule")


def _savings(view: View, scheduled: dict[str, Endpoint], floors_of: _Floors) -> None:
    st.subheader("Savings of off-hours shutdowns")
    priced = {n: e for n, e in scheduled.items() if isinstance(e.price, GpuHourPrice)}
    if not priced:
        st.info("No scheduled endpoint priced by the GPU hour.")
        return
    series = data.series(view.url, tuple(priced), ("replicas",), view.start, view.end, view.resolution)
    bucket_s = data.bucket_seconds(view.resolution)
    bucketed = figures.bucketed_metrics(series, ["replicas"], bucket_s).dropna()

    prices = {n: e.price.replica_hour_usd for n, e in priced.items() if isinstance(e.price, GpuHourPrice)}
    saved = figures.off_hours_savings(
        bucketed,
        # Judged at the bucket's middle: a downtime of a few minutes starts inside a minute.
        lambda name, at: floors_of.off_hours(name, at + timedelta(seconds=bucket_s / 2)),
        {n: _uptime_floor(e) for n, e in priced.items()},
        prices,
        bucket_s / 3600,
    )
    zero, woken = _zero_and_wake_ups(view, tuple(priced))
    saved_column, zero_column, wake_column = st.columns(3)
    saved_column.metric(
        f"Saved off-hours ({view.range_label.lower()})",
        ui.money(float(saved["usd_saved"].sum())),
        border=True,
    )
    zero_column.metric("Scaled to zero", zero, border=True, help="scale actions to 0 replicas in the range")
    wake_column.metric(
        "Woken on demand",
        woken,
        border=True,
        help="scale actions from 0 because requests waited at the router (held while a replica starts)",
    )
    st.caption(
        f"Per off-hours {'minute' if bucket_s < 3600 else 'hour'}: the replicas the uptime floor "
        "would have kept, minus those observed, times the replica's price."
    )
    saved["off_hours"] = saved["off_hours"] * bucket_s / 3600
    ui.table(
        saved,
        "off-hours-savings",
        {
            "off_hours": st.column_config.NumberColumn("off-hours hours", format="%.2f"),
            "replica_hours_saved": st.column_config.NumberColumn("replica-hours saved", format="%.1f"),
            "usd_saved": st.column_config.NumberColumn("saved", format="dollar"),
        },
    )


def _zero_and_wake_ups(view: View, names: tuple[str, ...]) -> tuple[int, int]:
    """Applied scale actions to zero, and from zero by the wake-on-demand rule."""
    events = data.scaling_events(view.url, view.start, view.end, actions_only=True)
    events = events[events["endpoint"].isin(names) & events["applied"].astype(bool)]
    to_zero = int((events["to_replicas"] == 0).sum())
    woken = (events["from_replicas"] == 0) & events["reason"].str.contains("wake on demand", regex=False)
    return to_zero, int(woken.sum())


def _replays(view: View) -> None:
    st.subheader("Replay: policy comparison")
    saved = data.replays(view.url)
    if not saved:
        st.info("No replay saved yet: run `inferplane replay --config FILE --save NAME`.")
        return
    name = st.selectbox("Replay", list(saved), key="replay") if len(saved) > 1 else next(iter(saved))
    document = saved[str(name)]
    rows = pd.DataFrame(document.get("rows", []))
    first = [c for c in _REPLAY_COLUMNS if c in rows]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    st.caption(
        f"{name}: endpoint {document.get('endpoint', '?')}, trace {document.get('trace', '?')}, "
        f"{document.get('requests', '?')} requests, TTFT target {document.get('ttft_target_seconds', '?')} s"
    )
    if {"policy", "cost_usd", "slo_attainment"} <= set(rows.columns):
        st.plotly_chart(charts.policy_comparison(rows), key="replay-chart")
    ui.table(rows, f"replay-{name}", _REPLAY_COLUMNS)


# The replay table's columns, in this order (the rest follow as saved).
_REPLAY_COLUMNS = {
    "policy": st.column_config.TextColumn("policy", pinned=True),
    "gpu_hours": st.column_config.NumberColumn("GPU hours", format="%.2f"),
    "cost_usd": st.column_config.NumberColumn("cost", format="dollar"),
    "slo_attainment": st.column_config.NumberColumn("SLO attainment", format="percent"),
    "p95_ttft_seconds": st.column_config.NumberColumn("p95 TTFT", format="%.2f s"),
    "scale_actions": st.column_config.NumberColumn("scale actions"),
    "max_queue": st.column_config.NumberColumn("max queue"),
}


def body(view: View) -> None:
    settings = ui.load_config()
    downtimes = data.downtimes(view.url, tuple(view.endpoints))
    scheduled = _scheduled(settings, list(view.endpoints), downtimes)
    _decision_log(view, settings)
    floors_of = _Floors(scheduled, downtimes)
    _schedules(scheduled, downtimes, floors_of, view)
    _savings(view, scheduled, floors_of)
    _replays(view)


ui.page("Autoscaler", body)
