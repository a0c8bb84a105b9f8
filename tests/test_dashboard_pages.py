"""Every dashboard page through Streamlit's AppTest, over stores these tests seed: a full
one with known figures (which the pages must show exactly), one with readings and costs
but no scaling events, alerts or replays, an empty (migrated) one, and a file with no
tables at all."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest

from collector.samples import CostRow, Sample
from dashboard.data import CONFIG_ENV, STORE_ENV
from dashboard.ui import EMPTY_STATE
from inferplane.store import Store, open_store
from tests.test_store import pg_admin  # noqa: F401 - the real PostgreSQL, shared with the store tests

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PAGES = ["overview", "cost_performance", "autoscaler", "alerts", "what_if"]
TITLES = {
    "overview": "Overview",
    "cost_performance": "Cost versus performance",
    "autoscaler": "Autoscaler",
    "alerts": "Alerts",
    "what_if": "What-if",
}
NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)  # a Wednesday; November has 720 hours
TODAY = NOW.replace(hour=0, minute=0)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
PG_PASSWORD = "s3cret-pg-password"


def _config(store_url: str) -> dict[str, object]:
    hosted = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
        "Microsoft.CognitiveServices/accounts/contoso"
    )
    return {
        "store": {"url": store_url},
        "endpoints": [
            {
                "name": "alpha",
                "target": {"kind": "local", "model": "m"},
                "min_replicas": 0,
                "max_replicas": 2,
                "price": {"gpu_per_hour_usd": 2.0},
                "latency_target_seconds": 1.0,
                "ttft_target_seconds": 0.5,
                "autoscaling": {"schedules": [{"when": "Mon-Fri 08:00-18:00 UTC", "min_replicas": 1}]},
            },
            {
                "name": "beta",
                "target": {"kind": "local", "model": "m"},
                "max_replicas": 4,
                "price": {"gpu_per_hour_usd": 4.0, "gpus_per_replica": 2},
            },
            {
                "name": "hosted",
                "target": {"kind": "azure_openai", "resource_id": hosted, "deployment": "d"},
                "price": {"input_per_1k_usd": 0.001, "output_per_1k_usd": 0.002},
            },
        ],
    }


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    return [start + i * MINUTE for i in range(int((end - start) / MINUTE))]


def _readings() -> list[Sample]:
    """10:00-12:00 today: alpha (endpoint-level) at 50% GPU, 100 + 50 tokens/s, p95 0.8 s;
    beta as two replicas, each at 4% and 6% GPU and 5 + 5 tokens/s, p95 1.5 s (idle: 5%).
    alpha's 06:00 hour (off-hours) at 0 replicas; replicas up to 12:29 in raw samples."""
    rows: list[Sample] = []
    for at in _minutes(TODAY.replace(hour=10), TODAY.replace(hour=12)):
        rows += [
            Sample(at, "alpha", "gpu_utilization", 0.5),
            Sample(at, "alpha", "prompt_tokens_per_second", 100.0),
            Sample(at, "alpha", "generated_tokens_per_second", 50.0),
            # What the collector keeps beside the rates: the tokens of the minute before.
            Sample(at, "alpha", "prompt_tokens", 100.0 * 60),
            Sample(at, "alpha", "generated_tokens", 50.0 * 60),
            Sample(at, "alpha", "request_latency_seconds_p95", 0.8),
            Sample(at, "alpha", "time_to_first_token_seconds_p95", 0.3),
            Sample(at, "beta", "request_latency_seconds_p95", 1.5),
        ]
        for replica, gpu in (("r1", 0.04), ("r2", 0.06)):
            rows += [
                Sample(at, "beta", "gpu_utilization", gpu, replica),
                Sample(at, "beta", "prompt_tokens_per_second", 5.0, replica),
                Sample(at, "beta", "generated_tokens_per_second", 5.0, replica),
                Sample(at, "beta", "prompt_tokens", 5.0 * 60, replica),
                Sample(at, "beta", "generated_tokens", 5.0 * 60, replica),
            ]
    for at in _minutes(TODAY.replace(hour=6), TODAY.replace(hour=7)):
        rows.append(Sample(at, "alpha", "replicas", 0.0))
    for at in _minutes(TODAY.replace(hour=10), NOW):
        rows += [Sample(at, "alpha", "replicas", 1.0), Sample(at, "beta", "replicas", 2.0)]
    return rows


def _costs() -> list[CostRow]:
    """Estimated: alpha $2/h since yesterday 00:00, beta $8/h today; billed: alpha
    yesterday $50 (against $48 estimated)."""
    yesterday = TODAY - timedelta(days=1)
    rows = [
        CostRow(yesterday + h * HOUR, yesterday + (h + 1) * HOUR, "alpha", "gpu", 2.0, "USD", "estimated")
        for h in range(36)
    ]
    rows += [
        CostRow(TODAY + h * HOUR, TODAY + (h + 1) * HOUR, "beta", "gpu", 8.0, "USD", "estimated")
        for h in range(12)
    ]
    rows.append(CostRow(yesterday, TODAY, "alpha", "Virtual Machines", 50.0, "USD", "billed"))
    return rows


def _events(store: Store) -> None:
    at = TODAY.replace(hour=10)
    store.write_scaling_event(
        at, "alpha", 0, 1, "schedule opens: floor 1", applied=True, dry_run=False, inputs={}
    )
    store.write_scaling_event(at + HOUR, "alpha", 1, 1, "hold", applied=True, dry_run=False, inputs={})
    details = {"severity": "warning"}
    store.write_alert_event(at, "fp-idle", "beta", "idle_gpu", "firing", "beta idles", details)
    store.write_alert_event(at + HOUR, "fp-idle", "beta", "idle_gpu", "resolved", "beta idles", details)
    store.write_alert_event(at + HOUR, "fp-slow", "alpha", "latency_slo", "firing", "alpha is slow", details)
    sent = at + timedelta(seconds=30)
    store.write_delivery(sent, "fp-idle", "oncall-mail", 1, True)
    store.write_delivery(sent, "fp-idle", "oncall-hook", 1, False, "HTTP 503")
    store.write_delivery(sent + MINUTE, "fp-idle", "oncall-hook", 2, True)
    rows = [
        {"policy": "configured", "gpu_hours": 6.0, "cost_usd": 22.1, "slo_attainment": 0.967},
        {"policy": "oracle", "gpu_hours": 1.4, "cost_usd": 5.15, "slo_attainment": 0.9999},
    ]
    store.save_state(
        "replay:test", {"endpoint": "alpha", "trace": "t.csv", "requests": 10, "rows": rows}, NOW
    )


def _seed(folder: Path, *, events: bool, url: str | None = None) -> tuple[str, Path]:
    url = url or f"sqlite:///{folder / 'store.db'}"
    store = open_store(url)
    try:
        store.write_samples(_readings())
        store.write_costs(_costs())
        store.rollup(NOW)
        if events:
            _events(store)
    finally:
        store.close()
    config = folder / "inferplane.yaml"
    # A config holds no secret (its check refuses a password): the dashboard gets the URL.
    bare = sa.make_url(url)._replace(password=None).render_as_string(hide_password=False)
    config.write_text(yaml.safe_dump(_config(bare)), encoding="utf-8")
    return url, config


@pytest.fixture(scope="module")
def postgres_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The full store on the real PostgreSQL, in a schema of its own."""
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    schema = f"dashboard_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    # A password the pages must never show: the server's own, or one it does not ask for.
    url = url if url.password else url.set(password=PG_PASSWORD)
    try:
        yield _seed(tmp_path_factory.mktemp("pg"), events=True, url=url.render_as_string(hide_password=False))
    finally:
        st.cache_resource.clear()  # disposes the dashboard's engine: its connections close now
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def quiet_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return _seed(tmp_path_factory.mktemp("quiet"), events=False)


def _open(page: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    if page != "overview":
        app.switch_page(f"views/{page}.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == [TITLES[page]]
    return app


def _use(env: pytest.MonkeyPatch, store: tuple[str, Path], with_config: bool = True) -> None:
    env.setenv(STORE_ENV, store[0])
    if with_config:
        env.setenv(CONFIG_ENV, str(store[1]))


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _column_config(app: AppTest, index: int) -> dict[str, Any]:
    """The column settings the page gave its ``index``-th table (as sent to the browser)."""
    return {
        name.removeprefix("col:name:"): value
        for name, value in json.loads(app.dataframe[index].proto.columns).items()
    }


def _frames(app: AppTest) -> list[pd.DataFrame]:
    return [frame.value for frame in app.dataframe]


# --- the full store: the figures shown are the seeded ones ------------------------------


def test_overview_shows_the_seeded_spend_tokens_and_alerts(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("overview")
    shown = _metrics(app)
    assert shown["Spend today"] == "$120.00"  # alpha 12 x $2 + beta 12 x $8
    assert shown["Month to date"] == "$168.00"  # + alpha yesterday 24 x $2
    # Month to date + the rate of 06:00-12:30 ($12 alpha + $48 beta) for the 299.5 h left.
    assert shown["Projected month"] == f"${168 + 60 / 6.5 * 299.5:,.2f}" == "$2,932.62"
    assert shown["Billed month to date"] == "$50.00"
    assert shown["Billed − estimated"] == "$2.00"  # alpha's bill against its $48 estimate
    # alpha 150 tokens/s, beta 2 replicas x 10 tokens/s, for two hours.
    assert shown["Tokens (last 7 days)"] == "1.22 M"  # (150 + 20) x 7,200 = 1,224,000
    assert shown["Cost per 1K tokens"] == f"${168 / ((150 + 20) * 7200) * 1000:,.4f}"
    assert shown["Firing alerts"] == "1"
    assert shown["GPU utilization"] == "28%"  # alpha's 2 hours at 50%, beta's at 5%
    assert shown["Replicas now"] == "3"  # alpha 1 + beta 2
    assert shown["p95 latency over target"] == "0 of 1"  # alpha 800 ms against 1,000 ms
    assert shown["p95 TTFT over target"] == "0 of 1"
    # Trend lines under the headline figures (hourly over the range, daily over the month).
    trends = {m.label: list(m.proto.chart_data) for m in app.metric}
    assert len(trends["Spend today"]) == 36  # the hours with an estimate: yesterday 00:00 on
    assert trends["Month to date"] == [48.0, 168.0]
    assert trends["Tokens (last 7 days)"] == [(150 + 20) * 3600] * 2
    assert trends["GPU utilization"] == pytest.approx([0.275, 0.275])
    spend, performance = (frame.set_index("endpoint") for frame in _frames(app)[:2])
    assert spend.index.tolist() == ["alpha", "beta", "hosted", "All endpoints"]
    assert spend.loc["beta", "today_estimated"] == pytest.approx(96.0)
    assert math.isnan(spend.loc["beta", "month_billed"])  # beta has no bill: unknown, not $0
    assert spend.loc["All endpoints", "month_estimated"] == pytest.approx(168.0)
    assert performance.loc["beta", "gpu_utilization"] == pytest.approx(0.05)  # mean of its replicas
    assert performance.loc["beta", "tokens"] == pytest.approx(20 * 7200)  # sum of its replicas
    assert performance.loc["alpha", "p95_latency_ms"] == pytest.approx(800)
    assert performance.loc["alpha", "latency_target_ms"] == pytest.approx(1000)
    assert performance.loc["alpha", "ttft_p95_ms"] == pytest.approx(300)
    assert performance.loc["alpha", "replicas_now"] == 1
    assert performance.loc["beta", "replicas_now"] == 2
    assert performance.loc["alpha", "firing_alerts"] == 1
    assert performance.loc["alpha", "usd_per_1k_tokens"] == pytest.approx(72 / (150 * 7200) * 1000)
    assert performance.loc["alpha", "latency_trend"] == pytest.approx([800, 800])
    # The screen: a dash for no value, dollars with thousands separators, times in UTC.
    assert [frame.proto.placeholder for frame in app.dataframe] == ["—"] * 3
    assert _column_config(app, 0)["projected_billed"]["type_config"]["format"] == "dollar"
    assert _column_config(app, 2)["time"]["type_config"]["format"] == "YYYY-MM-DD HH:mm [UTC]"


def test_overview_over_30_days_reads_daily_and_shows_the_same_figures(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    """Beyond a week the overview reads daily rollups and daily cost sums (yesterday's 24
    hourly rows and its bill as one row each): every figure is the one the hourly rows
    give, and the trend lines have a point a day."""
    _use(dashboard_env, full_store)
    app = _open("overview")
    app.session_state["range"] = "Last 30 days"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = _metrics(app)
    assert shown["Spend today"] == "$120.00"
    assert shown["Month to date"] == "$168.00"
    assert shown["Projected month"] == "$2,932.62"
    assert shown["Billed month to date"] == "$50.00"
    assert shown["Billed − estimated"] == "$2.00"
    assert shown["Tokens (last 30 days)"] == "1.22 M"
    assert shown["Cost per 1K tokens"] == f"${168 / ((150 + 20) * 7200) * 1000:,.4f}"
    assert shown["GPU utilization"] == "28%"
    trends = {m.label: list(m.proto.chart_data) for m in app.metric}
    assert trends["Spend today"] == [48.0, 120.0]  # yesterday, today
    assert trends["Month to date"] == [48.0, 168.0]
    spend, performance = (frame.set_index("endpoint") for frame in _frames(app)[:2])
    assert spend.loc["alpha", "cost_trend"] == pytest.approx([48.0, 24.0])
    assert performance.loc["alpha", "p95_latency_ms"] == pytest.approx(800)
    assert performance.loc["alpha", "latency_trend"] == pytest.approx([800])
    assert performance.loc["beta", "tokens"] == pytest.approx(20 * 7200)


def test_overview_follows_the_endpoint_and_range_filters(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("overview")
    # Through session state: AppTest (Streamlit 1.67) drops the entry script's sidebar
    # from its tree after a rerun under st.navigation, so the widgets cannot be clicked.
    app.session_state["endpoints"] = ["beta"]
    app.run()
    assert not app.exception
    assert _metrics(app)["Spend today"] == "$96.00"
    assert _metrics(app)["Firing alerts"] == "0"
    app.session_state["endpoints"] = ["beta"]
    app.session_state["range"] = "Last 6 hours"  # minute rollups
    app.run()
    assert not app.exception
    assert _metrics(app)["Tokens (last 6 hours)"] == f"{20 * 7200:,}"  # 144,000


def test_cost_performance_shows_idle_hours_and_their_cost(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("cost_performance")
    shown = _metrics(app)
    assert shown["Idle GPU hours"] == "2"  # beta at 5% with 2 replicas, 10:00 and 11:00
    assert shown["Idle GPU cost"] == "$16.00"
    points = _frames(app)[0].set_index("endpoint")
    assert points.loc["beta", "latency_ms"] == pytest.approx(1500)
    assert points.loc["beta", "usd_per_1k_tokens"] == pytest.approx(96 / (20 * 7200) * 1000)
    assert len(app.get("plotly_chart")) == 2


def test_autoscaler_shows_decisions_schedules_savings_and_the_replay(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("autoscaler")
    decisions, schedules, savings, replay = _frames(app)
    assert decisions["reason"].tolist() == ["schedule opens: floor 1"]
    # The action's notice: one more $2 replica costs more, signed so.
    assert decisions["cost_change"].tolist() == ["+$2.00/h"]
    assert schedules["when"].tolist() == ["Mon-Fri 08:00-18:00 UTC"]
    # alpha's 06:00 hour is off-hours at 0 replicas: one replica-hour at $2 saved.
    assert _metrics(app)["Saved off-hours (last 7 days)"] == "$2.00"
    assert savings["replica_hours_saved"].tolist() == [1.0]
    assert replay["policy"].tolist() == ["configured", "oracle"]
    assert replay.columns.tolist() == ["policy", "gpu_hours", "cost_usd", "slo_attainment"]
    assert app.dataframe[0].proto.row_height > 64  # reasons wrap (Streamlit: rows over 4rem)
    assert _column_config(app, 0)["reason"]["width"] == "large"
    app.toggle(key="show_holds").set_value(True).run()
    assert _frames(app)[0]["reason"].tolist() == ["hold", "schedule opens: floor 1"]


def test_alerts_show_firing_resolved_and_deliveries_by_channel_name(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("alerts")
    assert _metrics(app) == {
        "Firing now": "1",
        "Resolved (last 7 days)": "1",
        "Failed delivery attempts": "1",
    }
    firing, events, deliveries = _frames(app)
    assert firing["summary"].tolist() == ["alpha is slow"]
    assert sorted(events["status"]) == ["firing", "firing", "resolved"]
    assert deliveries["channel"].tolist() == ["oncall-hook", "oncall-mail", "oncall-hook"]
    assert deliveries["problem"].tolist()[2] == "HTTP 503"
    assert deliveries["problem"].isna().tolist() == [True, True, False]
    # On screen: no "None" for a delivery without a problem, summaries wrap, times in UTC.
    assert {frame.proto.placeholder for frame in app.dataframe} == {"—"}
    assert [frame.proto.row_height > 64 for frame in app.dataframe] == [True, True, False]
    firing_since = _column_config(app, 0)["time"]
    assert (firing_since["label"], firing_since["type_config"]["format"]) == (
        "firing since",
        "YYYY-MM-DD HH:mm [UTC]",
    )


def test_alerts_follow_the_endpoint_filter(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("alerts")
    app.session_state["endpoints"] = ["alpha"]
    app.run()
    assert not app.exception
    # alpha's alert fires with no delivery recorded; beta's deliveries are not alpha's.
    assert _metrics(app) == {
        "Firing now": "1",
        "Resolved (last 7 days)": "0",
        "Failed delivery attempts": "0",
    }


def test_auto_refresh_reruns_the_page_body_as_a_fragment(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("overview")
    app.session_state["auto_refresh"] = True
    app.session_state["refresh_every"] = "30 s"
    app.run()
    assert not app.exception
    assert _metrics(app)["Spend today"] == "$120.00"


def test_what_if_prices_self_hosted_tokens_against_the_hosted_model(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("what_if")
    table = _frames(app)[0].set_index("endpoint")
    assert table.loc["alpha", "self_hosted_per_1m_usd"] == pytest.approx(72 / (150 * 7200) * 1e6)
    # alpha's mix is 2/3 input: (0.001 x 2/3 + 0.002 x 1/3) per 1K.
    assert table.loc["alpha", "hosted_per_1m_usd"] == pytest.approx((0.001 * 2 / 3 + 0.002 / 3) * 1000)
    shown = _metrics(app)
    assert shown["Saving per month"] == f"${2.0 * 730.5 * (168 - 65) / 168:,.2f}"  # alpha: 1 replica at $2/h
    assert shown["On demand / month"] == f"${2.0 * 730.5:,.2f}"
    # Volumes in millions (readable in an input box) and compact on the cards.
    # Over the 2 hours with token readings (10:00-12:00), not the range's 168.
    assert app.number_input(key="monthly_mtokens").value == round(1_224_000 / 2 * 730.5 / 1e6, 1)
    price = ((0.001 * 2 / 3 + 0.002 / 3) * 1000 * 1_080_000 + 1.5 * 144_000) / 1_224_000  # $ per 1M
    assert shown["Break-even tokens / month"] == f"{730.5 / price:,.2f} M"
    app.number_input(key="monthly_mtokens").set_value(1000.0).run()
    assert _metrics(app)["Pay-per-token / month"] == f"${1000 * price:,.2f}"
    app.number_input(key="spot_discount").set_value(50.0).run()
    assert _metrics(app)["Spot / month (expected)"] == f"${2.0 * 730.5 * 0.5 * (1 + 1 / 24 * 10 / 60):,.2f}"


def test_every_table_has_a_csv_download(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    for page in PAGES:
        app = _open(page)
        assert len(app.get("download_button")) == len(app.dataframe) > 0, page


def test_a_secret_in_the_config_never_reaches_the_page(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path], tmp_path: Path
) -> None:
    secret = "hooks.example.com/s3cret-token"
    config = _config(full_store[0])
    config["alerts"] = {"channels": [{"kind": "webhook", "name": "hook", "url_env": "HOOK_URL"}]}
    path = tmp_path / "inferplane.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    dashboard_env.setenv("HOOK_URL", f"https://{secret}")
    dashboard_env.setenv(STORE_ENV, full_store[0])
    dashboard_env.setenv(CONFIG_ENV, str(path))
    for page in PAGES:
        app = _open(page)
        assert secret not in str(app._tree), page


def test_pages_read_postgresql_the_same(
    dashboard_env: pytest.MonkeyPatch, postgres_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, postgres_store)
    apps = {page: _open(page) for page in PAGES}
    overview = _metrics(apps["overview"])
    assert (overview["Spend today"], overview["Billed − estimated"], overview["Tokens (last 7 days)"]) == (
        "$120.00",
        "$2.00",
        "1.22 M",
    )
    assert _metrics(apps["cost_performance"])["Idle GPU cost"] == "$16.00"
    assert _metrics(apps["autoscaler"])["Saved off-hours (last 7 days)"] == "$2.00"
    assert _metrics(apps["alerts"])["Failed delivery attempts"] == "1"
    assert _frames(apps["what_if"])[0].set_index("endpoint").loc["alpha", "tokens"] == 150 * 7200
    # The store URL's password, in every element of every page (its sidebar included).
    password = sa.make_url(postgres_store[0]).password
    assert password
    for page, app in apps.items():
        assert password not in str(app._tree), page
        assert postgres_store[0] not in str(app._tree), page


@pytest.mark.parametrize("store", ["full_store", "postgres_store"])
def test_the_dashboard_cannot_write_to_the_store(request: pytest.FixtureRequest, store: str) -> None:
    from dashboard.data import _engine
    from inferplane.store.schema import samples

    url = request.getfixturevalue(store)[0]
    with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read-?only"), _engine(url).begin() as connection:
        connection.execute(sa.delete(samples))
    with _engine(url).connect() as connection:  # and it still reads
        assert connection.execute(sa.select(sa.func.count()).select_from(samples)).scalar()


# --- stores without everything ------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_pages_work_before_the_autoscaler_and_alerts_ran(
    dashboard_env: pytest.MonkeyPatch, quiet_store: tuple[str, Path], page: str
) -> None:
    _use(dashboard_env, quiet_store)
    app = _open(page)
    assert app.metric or app.dataframe


@pytest.mark.parametrize("page", PAGES)
def test_pages_work_without_a_config(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path], page: str
) -> None:
    _use(dashboard_env, full_store, with_config=False)
    app = _open(page)
    assert not app.warning


@pytest.mark.parametrize("page", PAGES)
def test_empty_store_tells_a_new_user_what_to_run(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path, page: str
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url).close()  # migrated, no rows
    dashboard_env.setenv(STORE_ENV, url)
    app = _open(page)
    assert [i.value for i in app.info] == [EMPTY_STATE]
    for command in ("inferplane collect", "inferplane up", "inferplane dashboard --sample-data"):
        assert command in EMPTY_STATE


def test_a_store_without_tables_is_empty_and_left_unmigrated(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database = tmp_path / "bare.db"
    dashboard_env.setenv(STORE_ENV, f"sqlite:///{database}")
    app = _open("overview")
    assert [i.value for i in app.info] == [EMPTY_STATE]
    import sqlite3

    with sqlite3.connect(database) as connection:
        tables = connection.execute("select name from sqlite_master where type='table'").fetchall()
    assert tables == []  # the dashboard never migrates (nor writes)


def test_a_broken_config_is_named_and_the_pages_still_render(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: []\n", encoding="utf-8")
    dashboard_env.setenv(STORE_ENV, full_store[0])
    dashboard_env.setenv(CONFIG_ENV, str(bad))
    app = _open("overview")
    assert "bad.yaml" in app.warning[0].value
    assert _metrics(app)["Spend today"] == "$120.00"


def test_no_pages_folder_beside_the_entry_script() -> None:
    # Streamlit lists the files of a "pages" folder beside the entry script in the sidebar
    # on its own ("app", "alerts", ...) until st.navigation replaces the list: a flash of
    # a second navigation on every load. The page scripts live in views/ instead, and
    # every one of them is in the navigation.
    assert not (APP.parent / "pages").exists()
    scripts = sorted(p.stem for p in (APP.parent / "views").glob("*.py"))
    assert scripts == sorted(PAGES)
    assert all(f'_PAGES / "{name}.py"' in APP.read_text() for name in PAGES)


def test_alerts_show_what_the_local_catchers_received_with_its_payload(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from commands.up_catchers import INBOX_KEY as WRITTEN_KEY
    from dashboard.inbox import INBOX_KEY

    assert INBOX_KEY == WRITTEN_KEY
    url, config = _seed(tmp_path, events=False)
    store = open_store(url)
    hook = {"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "token_spike"}}]}
    received = [
        {"time": "2026-11-18T12:00:00+00:00", "via": "email", "subject": "[FIRING:1] alpha: token_spike",
         "recipients": ["you@example.com"], "payload": "token_spike: alpha: 9,000 tokens/min"},
        {"time": "2026-11-18T12:00:01+00:00", "via": "webhook", "subject": "POST /alerts firing",
         "payload": hook},
    ]  # fmt: skip
    store.save_state(INBOX_KEY, {"received": received}, NOW)
    store.close()
    _use(dashboard_env, (url, config))
    app = _open("alerts")
    (got,) = [frame for frame in _frames(app) if "payload" in frame.columns]
    assert got["via"].tolist() == ["webhook", "email"]  # newest first
    assert json.loads(got["payload"][0]) == hook
    assert got["payload"][1] == "token_spike: alpha: 9,000 tokens/min"
    assert got["to"][1] == "you@example.com"
    # Each payload in full (newest first), in an expander named by when, how and its subject.
    assert json.loads(app.code[0].value) == hook
    assert app.code[1].value == "token_spike: alpha: 9,000 tokens/min"
    assert [e.label for e in app.expander] == [
        "12:00:01 webhook: POST /alerts firing",
        "12:00:00 email: [FIRING:1] alpha: token_spike",
    ]
