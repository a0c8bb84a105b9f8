"""The demo's off-hours act, live: the router with a real replica of the bundled service,
the collector and the autoscaler on one scheduler (as the control plane runs them), and
the act as ``inferplane demo`` plays it, through its own engine on the same store. The
endpoint must go to zero inside the demo's downtime, a request at zero must be answered
(the router holds it while the autoscaler wakes a replica), and the Autoscaler page must
show the one-off downtime, the scale to zero and the wake-up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from commands.demo import LoadDriver
from commands.demo_off_hours import DEMO_REASON, EngineStage, show_off_hours
from dashboard.data import CONFIG_ENV, STORE_ENV
from inferplane.store import open_store
from tests.test_live_autoscaling import Router, control_loop, router, write_config  # noqa: F401 - the router fixture

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def test_the_demo_act_goes_to_zero_and_a_request_wakes_it_and_the_page_shows_it(
    router: tuple[Router, tuple[int, int]],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    live, ports = router
    store = tmp_path / "store.db"
    config = write_config(tmp_path / "inferplane.yaml", store, live.url, ports)
    said: list[str] = []
    began = datetime.now(UTC)
    with control_loop(config):
        stage = EngineStage.open(config, None, "live")
        driver = LoadDriver(live.url, temperature=0)
        try:
            # Readings first: the scale-in rule judges a covered window, never no data.
            driver.ask(16, 8)

            shown = show_off_hours(
                stage, lambda: driver.ask(16, 8), said.append, threading.Event(), zero_timeout_s=180
            )
        finally:
            driver.close()
            stage.close()
    assert shown.to_zero_s is not None, said
    assert shown.answered, driver.stats.outcomes
    assert driver.stats.outcomes == [200, 200] and driver.stats.sent == 2 and driver.stats.in_flight == 0

    opened = open_store(f"sqlite:///{store}")
    try:
        events = opened.read_scaling_events(began, datetime.now(UTC) + timedelta(seconds=1), "live")
        downtime = opened.load_state("downtime:live")
    finally:
        opened.close()
    actions = [e for e in events if e["from_replicas"] != e["to_replicas"] and e["applied"]]
    to_zero = [e for e in actions if e["to_replicas"] == 0]
    woken = [e for e in actions if e["from_replicas"] == 0]
    assert to_zero and DEMO_REASON in to_zero[0]["reason"], [e["reason"] for e in actions]
    assert woken and "wake on demand" in woken[0]["reason"], [e["reason"] for e in actions]
    assert to_zero[0]["time"] < woken[0]["time"]
    assert downtime is not None and datetime.fromisoformat(downtime["until"]) <= datetime.now(UTC)

    monkeypatch.setenv(STORE_ENV, f"sqlite:///{store}")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.switch_page("views/autoscaler.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Scaled to zero"], metrics["Woken on demand"]) == ("1", "1"), metrics
    assert any(label.startswith("Saved off-hours") for label in metrics), metrics
    tables = [t.value for t in app.dataframe]
    schedules = next(t for t in tables if "kind" in t.columns and "when" in t.columns)
    (row,) = schedules.to_dict("records")
    assert row["kind"] == "downtime (one-off)" and DEMO_REASON in row["when"], row
    decisions = next(t for t in tables if "to_replicas" in t.columns)
    reasons = " | ".join(str(r) for r in decisions["reason"])
    assert "wake on demand" in reasons and DEMO_REASON in reasons, reasons
    record_property("demo_act_to_zero_s", round(shown.to_zero_s, 1))
    record_property("demo_act_wake_s", round(shown.wake_s or 0, 1))
    print(f"\ndemo act: zero after {shown.to_zero_s:.1f} s; request at zero answered in {shown.wake_s:.1f} s")
