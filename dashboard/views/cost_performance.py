"""Cost versus performance: cost as $/h, p95 latency, GPU utilization and replicas on
one time axis (by the minute up to a day, hourly beyond) with scaling actions and alerts
marked; cost per 1K tokens against p95 latency per endpoint; the hours GPUs idled and
what they cost."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, figures, ui
from dashboard.filters import View
from inferplane.config.endpoints import GpuHourPrice, TokenPrice

_METRICS = ["request_latency_seconds_p95", "gpu_utilization", "replicas", *figures.TOKEN_METRICS]
# What a GPU-hour price is charged on: read for minute cost points only (hourly ones are
# the estimated cost rows).
_COUNTED_GPU = "ready_replica_seconds"
IDLE_FLOOR = 0.1  # the idle_gpu alert rule's default floor
TIMELINE_MAX = 8


def _costliest(cost: pd.DataFrame, view: View) -> list[str]:
    """The endpoints the timeline draws: those chosen in the sidebar, else the
    ``TIMELINE_MAX`` costliest (more lines than that on one panel cannot be read)."""
    names = list(view.endpoints)
    if len(names) <= TIMELINE_MAX or view.endpoints != view.all_endpoints:
        return names
    spend = cost.groupby("endpoint")["usd"].sum().reindex(names).fillna(0.0)
    return sorted(spend.sort_values(ascending=False, kind="stable").index[:TIMELINE_MAX])


def body(view: View) -> None:
    names = list(view.endpoints)
    colours = charts.endpoint_colours(view.all_endpoints)
    costs = data.cost_frame(view.url, view.start, view.end)
    costs = costs[costs["endpoint"].isin(names) & (costs["period_start"] >= view.start)]
    bucket_s = data.bucket_seconds(view.resolution)
    by_minute = 0 < bucket_s < 3600
    metrics = (*_METRICS, _COUNTED_GPU) if by_minute else tuple(_METRICS)
    series = data.series(view.url, view.endpoints, metrics, view.start, view.end, view.resolution)
    cost = figures.hourly_cost(costs)
    hourly = figures.hourly_metrics(series, _METRICS[:3]).merge(cost, on=["endpoint", "time"], how="outer")
    prices: dict[str, GpuHourPrice | TokenPrice] = {}
    if by_minute:
        # Minute buckets: each minute's counted usage times the price; hourly rows where
        # an endpoint has no counts (a gauge-only source) or no price in the config.
        settings = ui.load_config()
        prices = {e.name: e.price for e in settings.endpoints} if settings else {}
        line, by_hour = figures.timeline_cost(series, cost, prices, view.now, bucket_s)
        points = figures.bucketed_metrics(series, _METRICS[:3], bucket_s).merge(
            line, on=["endpoint", "time"], how="outer"
        )
        step = "by the minute"
    else:
        points, by_hour, step = hourly, [], "hourly"
    points["latency_ms"] = points["request_latency_seconds_p95"] * 1000
    points = points.sort_values(["endpoint", "time"])
    scaling = data.scaling_events(view.url, view.start, view.end)
    if not scaling.empty:
        scaling = scaling[
            scaling["endpoint"].isin(names) & (scaling["from_replicas"] != scaling["to_replicas"])
        ]
    alerts = data.alert_events(view.url, view.start, view.end)
    if not alerts.empty:
        alerts = alerts[alerts["endpoint"].isin(names) & (alerts["status"] == "firing")]

    top = _costliest(cost, view)
    shown = (
        ""
        if len(top) == len(names)
        else f" · the {len(top)} costliest endpoints (pick others in the sidebar)"
    )
    drawn = points[points["endpoint"].isin(top)].reset_index(drop=True)
    partial = drawn["partial"].eq(True).any()
    partial_note = " · the last hour is partial: its cost so far, as $/h" if partial else ""
    minutes = " · cost: each minute's counted usage times the price, as $/h" if step != "hourly" else ""
    unpriced = [name for name in by_hour if name in top and name not in prices]
    uncounted = [name for name in by_hour if name in top and name in prices]
    if unpriced:
        minutes += f" · hourly cost rows for {', '.join(unpriced)}: no price in the config"
    if uncounted:
        minutes += (
            f" · hourly cost rows for {', '.join(uncounted)}: no counted usage in the range "
            "(a gauge-only source)"
        )
    st.caption(
        f"{view.range_label}, {step}{shown}{minutes}{partial_note} · triangles: scaling actions · "
        "crosses: alerts firing"
    )
    chart = charts.timeline(
        drawn,
        scaling[scaling["endpoint"].isin(top)] if not scaling.empty else scaling,
        alerts[alerts["endpoint"].isin(top)] if not alerts.empty else alerts,
        colours,
    )
    st.plotly_chart(chart, key="timeline")

    st.subheader("Cost per 1K tokens against p95 latency")
    tokens = figures.tokens_served(series).sum(axis=1)
    points = pd.DataFrame(
        {
            "usd_per_1k_tokens": figures.cost_per_1k_tokens(
                figures.cost_in_range(costs, view.start, view.end), tokens
            ),
            "latency_ms": series[series["metric"] == "request_latency_seconds_p95"]
            .groupby("endpoint")["value"]
            .mean()
            * 1000,
        }
    ).dropna()
    points = points.rename_axis("endpoint").reset_index()
    if points.empty:
        st.info("No endpoint has both token counts and p95 latency in this range.")
    else:
        st.plotly_chart(charts.scatter_cost_latency(points, colours), key="scatter")
        ui.table(
            points,
            "cost-per-1k-tokens-vs-latency",
            {
                "usd_per_1k_tokens": st.column_config.NumberColumn("$ / 1K tokens", format="$%.4f"),
                "latency_ms": st.column_config.NumberColumn("p95 latency", format="%.0f ms"),
            },
        )

    st.subheader(f"Idle GPU hours (replicas up, GPU utilization under {IDLE_FLOOR:.0%})")
    idle = figures.idle_hours(
        hourly[["endpoint", "time", "gpu_utilization", "replicas"]].dropna(), cost, IDLE_FLOOR
    )
    per_endpoint = (
        idle.groupby("endpoint").agg(idle_hours=("time", "size"), idle_cost_usd=("usd", "sum")).reset_index()
    )
    cols = st.columns(2)
    cols[0].metric("Idle GPU hours", f"{len(idle):,}", border=True)
    cols[1].metric("Idle GPU cost", ui.money(float(idle["usd"].sum())), border=True)
    ui.table(
        per_endpoint,
        "idle-gpu-by-endpoint",
        {
            "idle_hours": st.column_config.NumberColumn("idle hours"),
            "idle_cost_usd": st.column_config.NumberColumn("idle cost", format="$%.2f"),
        },
    )
    ui.table(
        idle,
        "idle-gpu-hours",
        {
            "usd": st.column_config.NumberColumn("cost", format="$%.2f"),
            "gpu_utilization": st.column_config.NumberColumn("GPU util.", format="percent"),
        },
    )


ui.page("Cost versus performance", body)
