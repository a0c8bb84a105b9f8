"""Overview: spend (today, month to date, projected; estimated and billed), tokens, cost
per 1K tokens, GPU utilization, p95 latency and time to first token against target,
replicas now and firing alerts, per endpoint and in total."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import data, figures, ui
from dashboard.filters import View
from inferplane.config import InferplaneConfig

_METRICS = (
    "gpu_utilization",
    "request_latency_seconds_p95",
    "time_to_first_token_seconds_p95",
    *figures.TOKEN_METRICS,
)
_ALERT_LOOKBACK = timedelta(days=90)


def _targets(settings: InferplaneConfig | None) -> pd.DataFrame:
    rows = [
        {
            "endpoint": e.name,
            "latency_target_ms": _ms(e.latency_target_seconds),
            "ttft_target_ms": _ms(e.ttft_target_seconds),
        }
        for e in (settings.endpoints if settings else [])
    ]
    return pd.DataFrame(rows, columns=["endpoint", "latency_target_ms", "ttft_target_ms"]).set_index(
        "endpoint"
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def body(view: View) -> None:
    settings = ui.load_config()
    names = list(view.endpoints)
    costs = data.cost_frame(view.url, min(figures.month_start(view.now), view.start), view.end)
    costs = costs[costs["endpoint"].isin(names)]
    spend = figures.spend_summary(costs, view.now)
    series = data.series(view.url, view.endpoints, _METRICS, view.start, view.end, view.resolution)
    tokens = figures.tokens_served(series, data.bucket_seconds(view.resolution)).sum(axis=1)
    cost_range = figures.cost_in_range(costs, view.start, view.end)
    events = data.alert_events(view.url, view.now - _ALERT_LOOKBACK, view.end)
    firing = figures.firing_now(events)
    firing = firing[firing["endpoint"].isin(names)] if not firing.empty else firing
    hourly = figures.hourly_cost(costs[costs["period_start"] >= view.start])
    trend = hourly.groupby("time")["usd"].sum()
    total = spend.loc[figures.TOTAL]
    all_tokens = float(tokens.sum())

    st.caption(
        f"{view.range_label} · {len(names)} endpoints · days and months in UTC · "
        f"as of {view.now:%Y-%m-%d %H:%M} UTC"
    )
    cols = st.columns(4)
    cols[0].metric(
        "Spend today",
        ui.money(total["today_estimated"]),
        help="estimated; billed rows lag a day",
        chart_data=trend.tolist() or None,
        border=True,
    )
    cols[1].metric("Month to date", ui.money(total["month_estimated"]), border=True)
    cols[2].metric("Projected month", ui.money(total["projected_estimated"]), border=True)
    cols[3].metric("Firing alerts", f"{len(firing)}", border=True)
    cols = st.columns(4)
    cols[0].metric("Billed month to date", ui.money(total["month_billed"]), border=True)
    cols[1].metric(
        "Billed − estimated",
        ui.money(total["billed_minus_estimated"]),
        help="over the days billed so far",
        border=True,
    )
    cols[2].metric(f"Tokens ({view.range_label.lower()})", ui.count(all_tokens), border=True)
    per_1k = float(cost_range.sum()) / all_tokens * 1000 if all_tokens > 0 else None
    cols[3].metric("Cost per 1K tokens", ui.money(per_1k, 4), border=True)

    means = (
        series.groupby(["endpoint", "metric"])["value"]
        .mean()
        .unstack("metric")
        .reindex(columns=list(_METRICS))
    )
    replicas = pd.Series(
        data.latest(view.url, view.endpoints, "replicas", view.now + timedelta(minutes=1)), dtype=float
    )
    table = spend.drop(index=figures.TOTAL).reindex(names)
    estimated = ["today_estimated", "month_estimated", "projected_estimated"]
    table[estimated] = table[estimated].fillna(0.0)  # no estimate is $0; no bill stays unknown
    table["tokens"] = tokens.reindex(names).fillna(0.0).round().astype("int64")
    table["usd_per_1k_tokens"] = figures.cost_per_1k_tokens(cost_range, tokens).reindex(names)
    table["gpu_utilization"] = means["gpu_utilization"].reindex(names)
    table["p95_latency_ms"] = means["request_latency_seconds_p95"].reindex(names) * 1000
    table["ttft_p95_ms"] = means["time_to_first_token_seconds_p95"].reindex(names) * 1000
    table = table.join(_targets(settings))
    table["replicas_now"] = replicas.reindex(names)
    table["firing_alerts"] = (
        firing.groupby("endpoint").size().reindex(names).fillna(0).astype(int) if not firing.empty else 0
    )
    table["cost_trend"] = [hourly.loc[hourly["endpoint"] == n, "usd"].tolist() for n in names]
    table = table.reset_index()

    st.subheader("Per endpoint")
    ui.table(table, "overview", _COLUMNS)
    if not firing.empty:
        st.subheader("Firing alerts")
        ui.table(firing[["time", "endpoint", "rule", "summary"]], "firing-alerts")


_USD = st.column_config.NumberColumn(format="$%.2f")
_MS = st.column_config.NumberColumn(format="%.0f ms")
_COLUMNS = {
    "endpoint": st.column_config.TextColumn("endpoint", pinned=True),
    "today_estimated": st.column_config.NumberColumn("today (est.)", format="$%.2f"),
    "today_billed": st.column_config.NumberColumn("today (billed)", format="$%.2f"),
    "month_estimated": st.column_config.NumberColumn("month to date (est.)", format="$%.2f"),
    "month_billed": st.column_config.NumberColumn("month to date (billed)", format="$%.2f"),
    "projected_estimated": st.column_config.NumberColumn("projected month (est.)", format="$%.2f"),
    "projected_billed": st.column_config.NumberColumn("projected month (billed)", format="$%.2f"),
    "billed_minus_estimated": st.column_config.NumberColumn("billed − est.", format="$%.2f"),
    "tokens": st.column_config.NumberColumn("tokens", format="localized"),
    "usd_per_1k_tokens": st.column_config.NumberColumn("$ / 1K tokens", format="$%.4f"),
    "gpu_utilization": st.column_config.ProgressColumn(
        "GPU util.", format="percent", min_value=0, max_value=1
    ),
    "p95_latency_ms": st.column_config.NumberColumn(
        "p95 latency", format="%.0f ms", help="the p95 readings' mean over the range"
    ),
    "latency_target_ms": st.column_config.NumberColumn("latency target", format="%.0f ms"),
    "ttft_p95_ms": st.column_config.NumberColumn(
        "p95 TTFT", format="%.0f ms", help="time to first token: the p95 readings' mean over the range"
    ),
    "ttft_target_ms": st.column_config.NumberColumn("TTFT target", format="%.0f ms"),
    "replicas_now": st.column_config.NumberColumn("replicas now", format="%.0f"),
    "firing_alerts": st.column_config.NumberColumn("firing alerts"),
    "cost_trend": st.column_config.LineChartColumn("cost $/h"),
}

ui.page("Overview", body)
