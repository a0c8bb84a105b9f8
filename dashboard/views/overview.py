"""Overview: spend (today, month to date, projected; estimated and billed), tokens, cost
per 1K tokens, GPU utilization, p95 latency and time to first token against target,
replicas now and firing alerts, per endpoint and in total, with small trend lines.

Two tables rather than one: the spend columns and the performance columns together are
wider than the page, and the hidden ones were the performance ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import data, figures, ui
from dashboard.filters import View
from inferplane.config import InferplaneConfig

_METRICS = (
    "gpu_utilization",
    "request_latency_seconds_p95",
    "time_to_first_token_seconds_p95",
    "replicas",
    *figures.TOKEN_METRICS,
)
_ALERT_LOOKBACK = timedelta(days=90)
# A card: framed, as tall as the tallest in its row (those with a trend line are taller).
_CARD: dict[str, Any] = {"border": True, "height": "stretch"}


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


def _trend(values: pd.Series) -> list[float] | None:
    """A metric card's trend line: the finite values oldest first, None for fewer than two."""
    points = [float(v) for v in values.sort_index().dropna()]
    return points if len(points) > 1 else None


def _over_target(table: pd.DataFrame, value: str, target: str) -> str:
    """``"1 of 3"``: endpoints whose figure is over their target, of those with both."""
    both = table[[value, target]].dropna()
    return f"{int((both[value] > both[target]).sum())} of {len(both)}" if len(both) else ui.MISSING


def _step(resolution: str) -> str:
    return {"1m": "by the minute", "1h": "hourly", "1d": "daily"}[resolution]


def _month_to_date(costs: pd.DataFrame, view: View, source: str) -> pd.Series:
    """Cumulative ``source`` spend per day of this month (a trend line)."""
    rows = costs[(costs["source"] == source) & (costs["period_start"] >= figures.month_start(view.now))]
    return rows.groupby(rows["period_start"].dt.floor("D"))["amount"].sum().cumsum()


def body(view: View) -> None:
    settings = ui.load_config()
    names = list(view.endpoints)
    step = data.trend_resolution(view.start, view.end)
    # Daily trends read whole days as daily cost sums; the range's first day, today and
    # the run rate's window stay hourly, so every spend figure is the same either way.
    daily = (view.start, figures.run_rate_start(view.now)) if step == "1d" else None
    costs = data.cost_frame(view.url, min(figures.month_start(view.now), view.start), view.end, daily)
    costs = costs[costs["endpoint"].isin(names)]
    since = data.first_reading(view.url, view.endpoints, figures.run_rate_start(view.now))
    # Each endpoint's run rate over its own readings: one added an hour ago is not
    # spread over the six hours of the others.
    started = data.first_readings(view.url, figures.late_starters(costs, view.now))
    spend = figures.spend_summary(costs, view.now, started)
    series = data.series(view.url, view.endpoints, _METRICS, view.start, view.end, step)
    tokens = figures.tokens_served(series).sum(axis=1)
    cost_range = figures.cost_in_range(costs, view.start, view.end)
    events = data.alert_events(view.url, view.now - _ALERT_LOOKBACK, view.end)
    firing = figures.firing_now(events)
    firing = firing[firing["endpoint"].isin(names)] if not firing.empty else firing
    hourly = _per_step(figures.hourly_cost(costs[costs["period_start"] >= view.start]), step)
    per_hour = figures.hourly_metrics(series, list(_METRICS[:4]))
    replicas = pd.Series(
        data.latest(view.url, view.endpoints, "replicas", view.now + timedelta(minutes=1)), dtype=float
    )
    performance = _performance(view, settings, series, tokens, cost_range, replicas, firing, per_hour)

    st.caption(
        f"{view.range_label} · {len(names)} endpoints · days and months in UTC · "
        f"as of {view.now:%Y-%m-%d %H:%M} UTC · trend lines: tokens {_step(step)}, cost "
        f"{_step('1d' if step == '1d' else '1h')} over the range, daily over the month"
    )
    total = spend.loc[figures.TOTAL]
    cost_trend = hourly.groupby("time")["usd"].sum()
    cols = st.columns(4)
    cols[0].metric(
        "Spend today",
        ui.money(total["today_estimated"]),
        help="estimated; billed rows lag a day",
        chart_data=_trend(cost_trend),
        **_CARD,
    )
    cols[1].metric(
        "Month to date",
        ui.money(total["month_estimated"]),
        chart_data=_trend(_month_to_date(costs, view, "estimated")),
        **_CARD,
    )
    cols[2].metric(
        "Projected month",
        ui.money(total["projected_estimated"]),
        help="estimated month to date, plus the rest of the month " + figures.run_rate_label(view.now, since),
        **_CARD,
    )
    cols[3].metric("Firing alerts", f"{len(firing)}", **_CARD)
    cols = st.columns(4)
    cols[0].metric(
        "Billed month to date",
        ui.money(total["month_billed"]),
        chart_data=_trend(_month_to_date(costs, view, "billed")),
        **_CARD,
    )
    cols[1].metric(
        "Billed − estimated",
        ui.money(total["billed_minus_estimated"]),
        help="over the days billed so far",
        **_CARD,
    )
    all_tokens = float(tokens.sum())
    tokens_trend = figures.tokens_per_bucket(series)
    cols[2].metric(
        f"Tokens ({view.range_label.lower()})",
        ui.count(all_tokens),
        chart_data=_trend(tokens_trend),
        **_CARD,
    )
    per_1k = float(cost_range.sum()) / all_tokens * 1000 if all_tokens > 0 else None
    cols[3].metric(
        "Cost per 1K tokens",
        ui.money(per_1k, 4),
        chart_data=_trend(cost_trend / figures.tokens_per_hour(series).where(lambda t: t > 0) * 1000),
        **_CARD,
    )
    cols = st.columns(4)
    cols[0].metric(
        "GPU utilization",
        ui.pct(float(per_hour["gpu_utilization"].mean()) if not per_hour.empty else None),
        help=f"the mean over every endpoint's {'days' if step == '1d' else 'hours'} in the range",
        chart_data=_trend(per_hour.groupby("time")["gpu_utilization"].mean()),
        **_CARD,
    )
    cols[1].metric(
        "Replicas now",
        f"{replicas.sum():,.0f}" if not replicas.empty else ui.MISSING,
        chart_data=_trend(per_hour.groupby("time")["replicas"].sum(min_count=1)),
        **_CARD,
    )
    cols[2].metric(
        "p95 latency over target",
        _over_target(performance, "p95_latency_ms", "latency_target_ms"),
        help="endpoints whose p95 latency (the readings' mean over the range) is over their target",
        **_CARD,
    )
    cols[3].metric(
        "p95 TTFT over target",
        _over_target(performance, "ttft_p95_ms", "ttft_target_ms"),
        help="endpoints whose p95 time to first token is over their target",
        **_CARD,
    )

    st.subheader("Spend per endpoint")
    ui.table(_spend(spend, names, hourly), "overview-spend", _SPEND_COLUMNS)
    st.subheader("Performance per endpoint")
    ui.table(performance.reset_index(), "overview-performance", _PERFORMANCE_COLUMNS)
    if not firing.empty:
        st.subheader("Firing alerts")
        ui.table(firing[["time", "endpoint", "rule", "summary"]], "firing-alerts", wrap=True)


def _per_step(hourly: pd.DataFrame, step: str) -> pd.DataFrame:
    """The hourly cost per endpoint, summed per day for daily trends."""
    if step != "1d":
        return hourly
    days = hourly.assign(time=hourly["time"].dt.floor("D"))
    return days.groupby(["endpoint", "time"], as_index=False)["usd"].sum()


def _spend(spend: pd.DataFrame, names: list[str], hourly: pd.DataFrame) -> pd.DataFrame:
    """The spend per endpoint, then the total; an hourly cost trend per endpoint."""
    table = spend.drop(index=figures.TOTAL).reindex(names)
    estimated = ["today_estimated", "month_estimated", "projected_estimated"]
    table[estimated] = table[estimated].fillna(0.0)  # no estimate is $0; no bill stays unknown
    table.loc[figures.TOTAL] = spend.loc[figures.TOTAL]
    table["cost_trend"] = [hourly.loc[hourly["endpoint"] == n, "usd"].tolist() for n in names] + [
        hourly.groupby("time")["usd"].sum().tolist()
    ]
    return table.rename_axis("endpoint").reset_index()


def _performance(
    view: View,
    settings: InferplaneConfig | None,
    series: pd.DataFrame,
    tokens: pd.Series,
    cost_range: pd.Series,
    replicas: pd.Series,
    firing: pd.DataFrame,
    per_hour: pd.DataFrame,
) -> pd.DataFrame:
    """Tokens, cost per 1K tokens, GPU utilization, p95 latency and TTFT beside their
    targets, replicas now, firing alerts and an hourly p95 latency trend, per endpoint."""
    names = list(view.endpoints)
    means = (
        series.groupby(["endpoint", "metric"])["value"]
        .mean()
        .unstack("metric")
        .reindex(index=names, columns=list(_METRICS))
    )
    table = pd.DataFrame(index=pd.Index(names, name="endpoint"))
    table["tokens"] = tokens.reindex(names).fillna(0.0).round().astype("int64")
    table["usd_per_1k_tokens"] = figures.cost_per_1k_tokens(cost_range, tokens).reindex(names)
    table["gpu_utilization"] = means["gpu_utilization"]
    table["p95_latency_ms"] = means["request_latency_seconds_p95"] * 1000
    table["ttft_p95_ms"] = means["time_to_first_token_seconds_p95"] * 1000
    table = table.join(_targets(settings))
    table["replicas_now"] = replicas.reindex(names)
    table["firing_alerts"] = (
        firing.groupby("endpoint").size().reindex(names).fillna(0).astype(int) if not firing.empty else 0
    )
    latency = per_hour.dropna(subset=["request_latency_seconds_p95"])
    table["latency_trend"] = [
        (latency.loc[latency["endpoint"] == n, "request_latency_seconds_p95"] * 1000).tolist() for n in names
    ]
    return table[list(_PERFORMANCE_COLUMNS)[1:]]


_MONEY_PX, _TREND_PX = 95, 125  # column widths that fit a 1,440-pixel screen


def _usd(label: str, help_text: str, width: int = _MONEY_PX) -> Any:
    return st.column_config.NumberColumn(label, format="dollar", help=help_text, width=width)


_SPEND_COLUMNS = {
    "endpoint": st.column_config.TextColumn("endpoint", pinned=True, width=105),
    "today_estimated": _usd("today est.", "today, estimated from usage and prices"),
    "today_billed": _usd("today billed", "today, from the cloud bill (usually a day late)"),
    "month_estimated": _usd("month est.", "month to date, estimated"),
    "month_billed": _usd("month billed", "month to date, billed"),
    "projected_estimated": _usd("projected est.", "projected for the month, estimated", 110),
    "projected_billed": _usd("projected billed", "projected for the month, billed", 115),
    "billed_minus_estimated": _usd("billed − est.", "billed minus estimated, over the days billed so far"),
    "cost_trend": st.column_config.LineChartColumn(
        "cost trend", help="estimated cost per hour (per day beyond a week) over the range", width=_TREND_PX
    ),
}
_PERFORMANCE_COLUMNS = {
    "endpoint": st.column_config.TextColumn("endpoint", pinned=True, width=105),
    "tokens": st.column_config.NumberColumn("tokens", format="localized", width=105),
    "usd_per_1k_tokens": st.column_config.NumberColumn("$ / 1K tokens", format="$%.4f", width=95),
    "gpu_utilization": st.column_config.ProgressColumn(
        "GPU util.", format="percent", min_value=0, max_value=1, width=105
    ),
    "p95_latency_ms": st.column_config.NumberColumn(
        "p95 latency", format="%.0f ms", help="the p95 readings' mean over the range", width=85
    ),
    "latency_target_ms": st.column_config.NumberColumn(
        "target", format="%.0f ms", help="the endpoint's latency target", width=70
    ),
    "ttft_p95_ms": st.column_config.NumberColumn(
        "p95 TTFT",
        format="%.0f ms",
        help="time to first token: the p95 readings' mean over the range",
        width=80,
    ),
    "ttft_target_ms": st.column_config.NumberColumn(
        "target", format="%.0f ms", help="the endpoint's time-to-first-token target", width=70
    ),
    "replicas_now": st.column_config.NumberColumn("replicas", format="%.0f", help="replicas now", width=70),
    "firing_alerts": st.column_config.NumberColumn("alerts", help="alerts firing now", width=60),
    "latency_trend": st.column_config.LineChartColumn(
        "p95 latency", help="p95 latency (ms) over the range, hourly (daily beyond a week)", width=_TREND_PX
    ),
}

ui.page("Overview", body)
