"""Dashboard pages at their edges, through Streamlit's AppTest over seeded stores: inputs
at zero, secrets in delivery errors, alerts older than the range, a store younger than
an hour, replicas up for part of an hour, a range longer than the data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st

from collector.samples import Sample
from dashboard import ui
from dashboard.data import STORE_ENV
from dashboard.redact import redact
from inferplane.store import open_store
from tests.test_dashboard_pages import HOUR, MINUTE, NOW, TODAY, _frames, _metrics, _open, _seed, _use


def test_what_if_with_free_hosted_prices_says_there_is_no_break_even(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("what_if")
    app.number_input(key="in-hosted").set_value(0.0)
    app.number_input(key="out-hosted").set_value(0.0)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("no break-even volume" in i.value for i in app.info)
    assert "Break-even tokens / month" not in _metrics(app)
    assert "Saving per month" in _metrics(app)  # the sections after it still render


# Words a channel might answer with: a refused recipient, a webhook URL with its token.
_ADDRESS, _TOKEN = "oncall.lead@example.com", "T000/B000/s3cret-hook-token"
_OLD_ALERT = NOW - timedelta(days=10)  # fires before "Last 7 days" and never resolves


@pytest.fixture(scope="module")
def alert_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The full store, plus: a delivery whose error names an address and a webhook URL,
    and an alert that started firing 10 days ago, repeated (delivered) yesterday."""
    url, config = _seed(tmp_path_factory.mktemp("alerts"), events=True)
    store = open_store(url)
    try:
        at = TODAY.replace(hour=11)
        problem = (
            f"channel 'oncall-mail': smtp.example.com:587 refused recipients ['{_ADDRESS}']; "
            f"channel 'oncall-hook': HTTP 400: invalid_token for https://hooks.slack.com/services/{_TOKEN}"
        )
        store.write_delivery(at, "fp-slow", "oncall-mail", 1, False, problem)
        store.write_alert_event(
            _OLD_ALERT, "fp-old", "beta", "cost_budget", "firing", "beta over budget", {"severity": "warning"}
        )
        store.write_delivery(NOW - timedelta(days=1), "fp-old", "oncall-mail", 1, True)
    finally:
        store.close()
    return url, config


def _csv_spy(env: pytest.MonkeyPatch) -> list[bytes]:
    """Every CSV a page offers for download, as the page made it."""
    made: list[bytes] = []
    real = ui.csv_bytes

    def spy(frame: pd.DataFrame) -> bytes:
        made.append(real(frame))
        return made[-1]

    env.setattr(ui, "csv_bytes", spy)
    return made


def test_addresses_and_urls_in_delivery_errors_are_never_shown(
    dashboard_env: pytest.MonkeyPatch, alert_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, alert_store)
    csv = _csv_spy(dashboard_env)
    app = _open("alerts")
    problems = _frames(app)[2].set_index("time")["problem"]
    assert problems[pd.Timestamp(TODAY.replace(hour=11))] == (
        "channel 'oncall-mail': smtp.example.com:587 refused recipients ['<address>']; "
        "channel 'oncall-hook': HTTP 400: invalid_token for <url>"
    )
    shown = str(app._tree) + b"".join(csv).decode()
    assert csv and "<address>" in shown
    for secret in (_ADDRESS, "oncall.lead", _TOKEN, "hooks.slack.com"):
        assert secret not in shown, secret


def test_deliveries_of_an_alert_that_fired_before_the_range_are_shown(
    dashboard_env: pytest.MonkeyPatch, alert_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, alert_store)
    app = _open("alerts")
    deliveries = _frames(app)[2]
    repeat = deliveries[deliveries["time"] == pd.Timestamp(NOW - timedelta(days=1))]
    assert repeat[["endpoint", "rule", "channel"]].values.tolist() == [["beta", "cost_budget", "oncall-mail"]]
    assert _metrics(app)["Firing now"] == "2"  # alpha is slow; beta over budget since 10 days
    app.session_state["endpoints"] = ["alpha"]  # the endpoint filter still applies
    app.run()
    assert "beta" not in _frames(app)[2]["endpoint"].tolist()


def test_redact_replaces_every_address_and_url() -> None:
    assert redact(None) is None
    assert redact("HTTP 503") == "HTTP 503"
    assert redact("to <a.b+c@mail.example.org>, x@y") == "to <<address>>, <address>"
    assert redact("POST smtp://u:pw@host:25/x?y=1 failed") == "POST <url> failed"
    assert redact("'https://h/p?token=abc'") == "'<url>'"


@pytest.mark.parametrize(
    ("age", "opens_on"),
    [
        (timedelta(minutes=10), "Last 15 minutes"),
        (timedelta(minutes=50), "Last hour"),
        (timedelta(hours=20), "Last 24 hours"),
        (timedelta(days=20), "Last 7 days"),  # never longer unless asked for
    ],
)
def test_the_range_opens_on_the_data_the_store_has_by_the_minute(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path, age: timedelta, opens_on: str
) -> None:
    """A new store opens on its own minutes, read by the minute (a week of hourly points
    showed one point and flat lines for the first hour), and grows as readings come."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = open_store(url)
    try:
        store.write_samples([Sample(NOW - age, "fresh", "prompt_tokens", 300.0, "r1")])
        store.write_samples(
            [Sample(NOW - i * MINUTE, "fresh", "prompt_tokens", 600.0, "r1") for i in range(5)]
        )
    finally:
        store.close()
    dashboard_env.setenv(STORE_ENV, url)
    app = _open("overview")
    assert app.selectbox[0].value == opens_on
    tokens = _frames(app)[1].set_index("endpoint").loc["fresh", "tokens"]
    expected = 5 * 600 + (300 if age < timedelta(days=7) else 0)
    assert tokens == expected
    step = "tokens by the minute" if age <= timedelta(days=1) else "tokens hourly"
    assert any(step in c.value for c in app.caption), [c.value for c in app.caption]


def test_a_store_younger_than_an_hour_lists_its_endpoints(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'young.db'}"
    store = open_store(url)
    try:  # 20 minutes of readings, rolled up: minute buckets, no hourly one yet
        store.write_samples(
            [Sample(NOW - i * MINUTE, "gamma", "prompt_tokens_per_second", 10.0) for i in range(1, 21)]
            + [Sample(NOW - i * MINUTE, "gamma", "prompt_tokens", 600.0) for i in range(1, 21)]
        )
        store.rollup(NOW)
    finally:
        store.close()
    dashboard_env.setenv(STORE_ENV, url)
    app = _open("overview")
    assert _frames(app)[1]["endpoint"].tolist() == ["gamma"]
    # Hourly over the default range: the current hour is not rolled up, and still counts,
    # as the tokens read, not the first minutes' rate stretched over the hour.
    assert _frames(app)[1].set_index("endpoint").loc["gamma", "tokens"] == 20 * 60 * 10
    app.session_state["range"] = "Last 6 hours"  # minute rollups
    app.run()
    assert _frames(app)[1].set_index("endpoint").loc["gamma", "tokens"] == 20 * 60 * 10
    store = open_store(url)
    try:  # delta, 3 hours ago: hourly buckets now exist, and gamma is newer than them
        store.write_samples(
            [Sample(NOW - 3 * HOUR + i * MINUTE, "delta", "replicas", 1.0) for i in range(60)]
        )
        store.rollup(NOW)
    finally:
        store.close()
    st.cache_data.clear()
    app.run()
    assert _frames(app)[1]["endpoint"].tolist() == ["delta", "gamma"]


def test_a_replica_up_for_a_quarter_hour_counts_a_quarter_hour_of_tokens(
    dashboard_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """r1 serves 10 prompt tokens/s from 10:00 to 12:00; r2 20 tokens/s from 11:00 to
    11:15 only: 10 x 7,200 + 20 x 900 = 90,000 tokens, hourly or by the minute."""
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    start = TODAY.replace(hour=10)
    # Read every minute, as counter increases (the tokens of the minute before).
    readings = [Sample(start + i * MINUTE, "eps", "prompt_tokens", 10.0 * 60, "r1") for i in range(120)]
    readings += [
        Sample(start + HOUR + i * MINUTE, "eps", "prompt_tokens", 20.0 * 60, "r2") for i in range(15)
    ]
    store = open_store(url)
    try:
        store.write_samples(readings)
        store.rollup(NOW)
    finally:
        store.close()
    dashboard_env.setenv(STORE_ENV, url)
    app = _open("overview")  # last 7 days: the hourly rollup
    assert _frames(app)[1].set_index("endpoint").loc["eps", "tokens"] == 90_000
    app.session_state["range"] = "Last 6 hours"  # the minute rollup
    app.run()
    assert _frames(app)[1].set_index("endpoint").loc["eps", "tokens"] == 90_000


def test_what_if_scales_the_volume_read_not_the_range_to_a_month(
    dashboard_env: pytest.MonkeyPatch, full_store: tuple[str, Path]
) -> None:
    _use(dashboard_env, full_store)
    app = _open("what_if")
    volumes = [app.number_input(key="monthly_mtokens").value]
    app.session_state["range"] = "Last 30 days"  # two hours of readings in either range
    app.run()
    volumes.append(app.number_input(key="monthly_mtokens").value)
    assert volumes == [round(1_224_000 / 2 * 730.5 / 1e6, 1)] * 2
    assert any("1.22 M tokens over the 2.0 h with token readings" in c.value for c in app.caption)
