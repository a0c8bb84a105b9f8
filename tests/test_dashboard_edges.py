"""Dashboard pages at their edges, through Streamlit's AppTest over seeded stores: inputs
at zero, secrets in delivery errors, alerts older than the range, a store younger than
an hour, replicas up for part of an hour, a range longer than the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from dashboard.data import CONFIG_ENV, NOW_ENV
from tests.test_dashboard_pages import NOW, _metrics, _open, _seed, _use


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The page tests' full store (``_seed``), a copy of this module's own."""
    return _seed(tmp_path_factory.mktemp("full"), events=True)


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """As in the page tests: the seeded "now", no config, empty caches."""
    monkeypatch.setenv(NOW_ENV, NOW.isoformat())
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    st.cache_data.clear()
    yield monkeypatch
    st.cache_data.clear()


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
