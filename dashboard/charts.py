"""Plotly figures with one colour per endpoint on every page, and units on the axes.

Every chart that tells endpoints apart takes its colours from ``endpoint_colours`` (by
every known endpoint, so that a filter never changes one); markers that are not an
endpoint (scaling actions, alerts, a hosted price) have colours no endpoint gets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly import colors
from plotly.subplots import make_subplots

__all__ = [
    "ALERT_COLOUR",
    "MARKER_COLOUR",
    "endpoint_colours",
    "per_million",
    "policy_comparison",
    "scatter_cost_latency",
    "schedule_heatmap",
    "timeline",
]

ALERT_COLOUR, MARKER_COLOUR = "#d62728", "#444444"  # alerts firing; scaling actions, prices
_NEAR = 80  # RGB distance under which two colours read as one on a chart


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _apart(colour: str) -> bool:
    return all(math.dist(_rgb(colour), _rgb(marker)) >= _NEAR for marker in (ALERT_COLOUR, MARKER_COLOUR))


# Dark24, then Light24, less the colours a marker could be taken for: 39 endpoints
# before a colour repeats.
_PALETTE = [c for c in colors.qualitative.Dark24 + colors.qualitative.Light24 if _apart(c)]
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "legend": {"title": {"text": "endpoint"}}}


def _utc(times: pd.Series) -> Any:
    """Naive UTC datetime64 values: plotly copies and encodes them as one array, where
    aware timestamps are Python objects copied and encoded one by one (seconds per page)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def endpoint_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per endpoint, fixed by its place among every known endpoint (sorted), so
    that filtering never changes an endpoint's colour."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(names))}


def _line(x: Any, y: Any, endpoint: str, colours: dict[str, str], show: bool) -> dict[str, Any]:
    # Traces as plain dicts: plotly validates a dict once when the figure takes it, a
    # go.Scatter twice (when built and when added); with 80 traces that is most of a page.
    return {
        "type": "scatter",
        "x": x,
        "y": y,
        "name": endpoint,
        "legendgroup": endpoint,
        "showlegend": show,
        "mode": "lines",
        "line": {"color": colours.get(endpoint), "width": 1.5},
    }


# (column, axis title, tick format) of the cost-versus-performance rows.
_ROWS = (
    ("usd_per_hour", "cost $/h", "$,.2f"),
    ("latency_ms", "p95 latency ms", ",.0f"),
    ("gpu_utilization", "GPU utilization", ".0%"),
    ("replicas", "replicas", ",.0f"),
)


def timeline(
    hourly: pd.DataFrame, scaling: pd.DataFrame, alerts: pd.DataFrame, colours: dict[str, str]
) -> go.Figure:
    """Cost per hour, p95 latency, GPU utilization and replicas on one time axis; scaling
    actions marked on the replicas row (triangles), alerts firing on the cost row (crosses).

    ``hourly``: ``endpoint, time, usd_per_hour, latency_ms, gpu_utilization, replicas`` (the
    current, partial hour's cost as its rate so far)."""
    figure = make_subplots(rows=len(_ROWS), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    traces, places = [], []
    times = _utc(hourly["time"])
    for endpoint, where in sorted(hourly.groupby("endpoint").indices.items()):
        for index, (column, _, _) in enumerate(_ROWS, start=1):
            values = hourly[column].to_numpy()[where]
            traces.append(_line(times[where], values, str(endpoint), colours, show=index == 1))
            places.append(index)
    if traces:
        figure.add_traces(traces, rows=places, cols=[1] * len(places))
    if not scaling.empty:
        up = scaling["to_replicas"] > scaling["from_replicas"]
        figure.add_trace(
            go.Scatter(
                x=_utc(scaling["time"]),
                y=scaling["to_replicas"],
                mode="markers",
                name="scaling action",
                marker={
                    "symbol": [("triangle-up" if u else "triangle-down") for u in up],
                    "size": 8,
                    "color": MARKER_COLOUR,
                },
                text=scaling["endpoint"] + ": " + scaling["reason"],
                hoverinfo="text+x",
            ),
            row=4,
            col=1,
        )
    if not alerts.empty:
        figure.add_trace(
            go.Scatter(
                x=_utc(alerts["time"]),
                y=[0.0] * len(alerts),
                mode="markers",
                name="alert firing",
                marker={"symbol": "x", "size": 9, "color": ALERT_COLOUR},
                text=alerts["summary"],
                hoverinfo="text+x",
            ),
            row=1,
            col=1,
        )
    for index, (_, title, ticks) in enumerate(_ROWS, start=1):
        figure.update_yaxes(title_text=title, tickformat=ticks, row=index, col=1)
    figure.update_layout(height=820, hovermode="x unified", **_LAYOUT)
    figure.update_xaxes(title_text="UTC", row=len(_ROWS), col=1)
    return figure


def scatter_cost_latency(points: pd.DataFrame, colours: dict[str, str]) -> go.Figure:
    """Cost per 1K tokens against p95 latency, one point per endpoint
    (``endpoint, usd_per_1k_tokens, latency_ms``)."""
    figure = go.Figure(
        data=[
            {
                "type": "scatter",
                "x": [row.latency_ms],
                "y": [row.usd_per_1k_tokens],
                "name": row.endpoint,
                "mode": "markers+text",
                "text": [row.endpoint],
                "textposition": "top center",
                "marker": {"size": 12, "color": colours.get(row.endpoint)},
            }
            for row in points.itertuples(index=False)
        ]
    )
    figure.update_layout(
        xaxis_title="p95 latency ms",
        yaxis_title="$ per 1K tokens",
        height=380,
        **_LAYOUT,
    )
    figure.update_yaxes(tickformat="$,.4f")
    return figure


def schedule_heatmap(floors: pd.DataFrame, colours: dict[str, str]) -> go.Figure:
    """Replica floor per endpoint and hour (``endpoint, time, floor``): 0 is scaled to
    zero. The cells' colour is the floor; each endpoint's name is in its own colour."""
    grid = floors.pivot(index="endpoint", columns="time", values="floor")
    figure = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=grid.columns,
            y=grid.index,
            colorscale="Blues",
            colorbar={"title": {"text": "floor (replicas)"}},
            hovertemplate="%{y} %{x}: floor %{z}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Replica floor from the schedules (next 7 days, UTC)",
        height=120 + 30 * len(grid),
        margin=_LAYOUT["margin"],
    )
    names = [str(name) for name in grid.index]
    figure.update_yaxes(
        tickmode="array",
        tickvals=names,
        ticktext=[f'<span style="color:{colours.get(n, MARKER_COLOUR)}">{n}</span>' for n in names],
    )
    return figure


def per_million(table: pd.DataFrame, colours: dict[str, str]) -> go.Figure:
    """Self-hosted cost per 1M tokens per endpoint (bars in its colour) and the hosted
    price of the same mix (a marker), from ``endpoint, self_hosted_per_1m_usd,
    hosted_per_1m_usd``."""
    names = table["endpoint"].astype(str).tolist()
    figure = go.Figure(
        [
            go.Bar(
                x=names,
                y=table["self_hosted_per_1m_usd"],
                name="self-hosted",
                marker_color=[colours.get(n, MARKER_COLOUR) for n in names],
            ),
            go.Scatter(
                x=names,
                y=table["hosted_per_1m_usd"],
                name="hosted, same mix",
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 28, "color": MARKER_COLOUR, "line": {"width": 3}},
            ),
        ]
    )
    figure.update_layout(height=300, margin=_LAYOUT["margin"], yaxis_title="$ per 1M tokens")
    figure.update_yaxes(tickformat="$,.2f")
    return figure


def policy_comparison(rows: pd.DataFrame) -> go.Figure:
    """Replay rows: cost per policy (bars) and SLO attainment (markers, right axis)."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=rows["policy"], y=rows["cost_usd"], name="cost $", marker_color="#1f77b4"))
    figure.add_trace(
        go.Scatter(
            x=rows["policy"],
            y=rows["slo_attainment"],
            name="SLO attainment",
            mode="markers",
            marker={"size": 10, "color": "#ff7f0e"},
        ),
        secondary_y=True,
    )
    figure.update_yaxes(title_text="cost $", tickformat="$,.2f", secondary_y=False)
    figure.update_yaxes(
        title_text="SLO attainment", tickformat=".0%", range=[0, 1.05], dtick=0.2, secondary_y=True
    )
    figure.update_layout(height=380, margin=_LAYOUT["margin"])
    return figure
