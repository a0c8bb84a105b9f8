"""What the pages' charts hold, read from the Plotly figures they send (AppTest over the
page tests' full store): the timeline's scaling and alert markers at the seeded times,
the autoscaler's schedule heatmap and replay chart, one colour per endpoint on every
page, and auto-refresh set up at the chosen interval."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import charts
from dashboard.data import NOW_ENV, STORE_ENV
from dashboard.ui import EMPTY_STATE
from inferplane.store import open_store
from tests.test_dashboard_pages import NOW, PAGES, TODAY, _metrics, _open, _use


def _figures(app: AppTest) -> dict[str, dict[str, Any]]:
    """Each Plotly chart of the page by its key, as the browser receives it."""
    # An element's id is "$$ID-<hash>-<key>".
    return {
        chart.proto.id.split("-", 2)[-1]: json.loads(chart.proto.spec) for chart in app.get("plotly_chart")
    }


def _values(array: Any) -> list[Any]:
    """A figure's array as a list: Plotly sends numeric ones as typed base64 blocks."""
    if isinstance(array, dict) and "bdata" in array:
        shape = [int(n) for n in str(array.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(array["bdata"]), array["dtype"]).reshape(shape).tolist()
    return list(array)


def _trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [t for t in figure["data"] if t.get("name") == name]
    return found


def _at(*hours: int) -> list[str]:
    return [f"{TODAY.replace(hour=h):%Y-%m-%dT%H:%M:%S}.000000" for h in hours]


def test_the_timeline_marks_scaling_actions_and_alerts_at_their_times(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    timeline = _figures(_open("cost_performance"))["timeline"]
    scaling = _trace(timeline, "scaling action")
    assert (scaling["x"], _values(scaling["y"]), scaling["yaxis"]) == (_at(10), [1], "y4")  # the replicas row
    assert scaling["marker"]["symbol"] == ["triangle-up"]  # 0 -> 1; the hold is no action
    assert scaling["text"] == ["alpha: schedule opens: floor 1"]
    alerts = _trace(timeline, "alert firing")
    assert (alerts["x"], alerts["yaxis"]) == (_at(10, 11), "y")  # beta idles, alpha is slow
    assert alerts["text"] == ["beta idles", "alpha is slow"]


def test_the_autoscaler_draws_the_schedule_heatmap_and_the_replay(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    shown = _figures(_open("autoscaler"))
    (heatmap,) = shown["schedule"]["data"]
    assert heatmap["type"] == "heatmap" and heatmap["y"] == ["alpha"]
    (floors,) = _values(heatmap["z"])
    # From Wednesday 12:00 for 7 days: Mon-Fri 08:00-18:00 is floor 1, the rest 0.
    assert len(floors) == 168 and floors[:6] == [1] * 6 and floors[6:20] == [0] * 14
    assert sum(floors) == 5 * 10
    cost, attainment = shown["replay-chart"]["data"]
    assert (cost["type"], _values(cost["x"]), _values(cost["y"])) == (
        "bar",
        ["configured", "oracle"],
        [22.1, 5.15],
    )
    assert (_values(attainment["x"]), _values(attainment["y"]), attainment["yaxis"]) == (
        ["configured", "oracle"],
        [0.967, 0.9999],
        "y2",
    )


def _colour_of(figure: dict[str, Any], endpoint: str) -> set[str]:
    """Every colour the figure gives ``endpoint`` (lines, bars, tick labels)."""
    found: set[str] = set()
    for trace in figure["data"]:
        if trace.get("name") == endpoint:
            found.add((trace.get("line") or trace.get("marker"))["color"])
        if trace.get("type") == "bar" and endpoint in trace["x"]:
            found.add(trace["marker"]["color"][trace["x"].index(endpoint)])
    for axis in (v for k, v in figure["layout"].items() if k.startswith("yaxis")):
        for text in axis.get("ticktext", []):
            if text.endswith(f">{endpoint}</span>"):
                found.add(text.split("color:", 1)[1].split('"', 1)[0])
    return found


def test_an_endpoint_has_one_colour_on_every_page(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    shown = {
        **_figures(_open("cost_performance")),
        **_figures(_open("autoscaler")),
        **_figures(_open("what_if")),
    }
    charts_of = {
        "alpha": ("timeline", "scatter", "schedule", "per-million"),
        "beta": ("timeline", "scatter", "per-million"),
    }
    seen = {name: [_colour_of(shown[key], name) for key in keys] for name, keys in charts_of.items()}
    for name, colours in seen.items():  # on every chart, and the same one
        assert all(colours) and len(set().union(*colours)) == 1, (name, colours)
    assert seen["alpha"][0] != seen["beta"][0]


def _distance(a: str, b: str) -> float:
    return math.dist(*(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in (a, b)))


def test_no_endpoint_colour_can_be_taken_for_a_marker() -> None:
    colours = charts.endpoint_colours([f"e{i:02}" for i in range(60)])
    for marker in (charts.ALERT_COLOUR, charts.MARKER_COLOUR):
        assert min(_distance(marker, c) for c in colours.values()) >= 80, marker


def _fragment_spy(env: pytest.MonkeyPatch) -> list[Any]:
    """The ``run_every`` of each fragment a page sets up."""
    every: list[Any] = []
    real: Callable[..., Any] = st.fragment

    def spy(func: Any = None, *, run_every: Any = None) -> Any:
        every.append(run_every)
        return real(func, run_every=run_every)

    env.setattr(st, "fragment", spy)
    return every


@pytest.mark.parametrize(("choice", "seconds"), [("30 s", 30), ("5 min", 300)])
def test_auto_refresh_reruns_the_page_at_the_chosen_interval(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path], choice: str, seconds: int
) -> None:
    _use(dashboard_env, full_store)
    every = _fragment_spy(dashboard_env)
    app = _open("overview")
    assert every == []  # off by default: the page is drawn once
    app.session_state["auto_refresh"] = True
    app.session_state["refresh_every"] = choice
    app.run()
    assert not app.exception
    assert every == [seconds]
    assert _metrics(app)["Spend today"] == "$120.00"


def test_an_empty_store_refreshes_into_its_first_data(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The empty state is drawn inside the refreshing part, so that a page left open
    on a new store shows the data once the collector wrote some."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    open_store(url).close()
    dashboard_env.setenv(STORE_ENV, url)
    every = _fragment_spy(dashboard_env)
    app = _open("overview")
    app.session_state["auto_refresh"] = True
    app.run()
    assert [i.value for i in app.info] == [EMPTY_STATE] and every == [60]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_a_range_after_the_data_stopped(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path], page: str
) -> None:
    _use(dashboard_env, full_store)
    dashboard_env.setenv(NOW_ENV, (NOW + timedelta(days=3)).isoformat())
    app = _open(page)
    app.session_state["range"] = "Last 6 hours"  # nothing in it: the data stopped 3 days ago
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.metric or app.info


def test_the_timeline_is_by_the_minute_up_to_a_day_with_hourly_rows_where_nothing_is_counted(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Last 6 hours: minute buckets. alpha's replica-seconds are counted (one replica,
    10:00-12:30): each minute's cost at $2/GPU-hour is $2/h, up to the minute now is in.
    beta has no counted replica-seconds: its hourly rows ($8 each, 07:00-12:00) as a step
    per hour, and the caption says so."""
    from inferplane.vocabulary import Sample
    from tests.test_dashboard_pages import _seed

    store_and_config = _seed(tmp_path, events=False)
    store = open_store(store_and_config[0])
    try:
        minutes = [TODAY.replace(hour=10) + timedelta(minutes=m) for m in range(150)]
        store.write_samples([Sample(at, "alpha", "ready_replica_seconds", 60.0) for at in minutes])
        store.rollup(NOW)
    finally:
        store.close()
    _use(dashboard_env, store_and_config)
    app = _open("cost_performance")
    app.session_state["range"] = "Last 6 hours"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    (caption,) = [c.value for c in app.caption if "triangles" in c.value]
    assert caption.startswith("Last 6 hours, by the minute")
    assert "hourly cost rows for beta: no counted usage in the range" in caption
    assert "alpha" not in caption
    timeline = _figures(app)["timeline"]
    cost = {t["name"]: t for t in timeline["data"] if t.get("yaxis") == "y" and t.get("mode") == "lines"}

    def points(name: str) -> dict[str, float]:
        x, y = _values(cost[name]["x"]), _values(cost[name]["y"])
        return {str(at)[:16]: v for at, v in zip(x, y, strict=True) if v is not None and not math.isnan(v)}

    def stamps(start: int, count: int) -> list[str]:
        return [f"{TODAY + timedelta(minutes=start + m):%Y-%m-%dT%H:%M}" for m in range(count)]

    alpha, beta = points("alpha"), points("beta")
    assert list(alpha) == stamps(10 * 60, 150)  # 10:00-12:29 (12:30 is still being counted)
    assert list(alpha.values()) == pytest.approx([2.0] * 150)
    assert list(beta) == stamps(7 * 60, 5 * 60)  # the hourly rows of 07:00-11:00, by the minute
    assert list(beta.values()) == pytest.approx([8.0] * 300)
    for trace in cost.values():  # minute points on every line
        x = _values(trace["x"])
        assert (
            len(x) > 1
            and str(x[1])[:16] == f"{pd.Timestamp(str(x[0])) + pd.Timedelta(minutes=1):%Y-%m-%dT%H:%M}"
        )
