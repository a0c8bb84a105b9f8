"""The dashboard's sample data: deterministic, every table filled, a config that passes
the check, and figures that agree with each other (costs with replicas and tokens,
scaling events with replica counts, alerts with their deliveries)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.replay.report import COLUMNS
from commands.sample import HOSTED, SampleSet, endpoint_names, write_sample
from inferplane.config import check_config, load_config
from inferplane.store import open_store
from inferplane.store.schema import metadata

NOW = datetime(2026, 11, 25, 13, 57, tzinfo=UTC)  # a Wednesday afternoon


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    return write_sample(tmp_path_factory.mktemp("sample"), now=NOW, days=7, endpoints=4)


@pytest.fixture(scope="module")
def store(sample: SampleSet) -> Any:
    opened = open_store(sample.store_url)
    yield opened
    opened.close()


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in metadata.tables}


def test_the_same_arguments_write_the_same_store_and_config(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "a", now=NOW, days=2, endpoints=2, seed=3)
    again = write_sample(tmp_path / "b", now=NOW, days=2, endpoints=2, seed=3)
    other = write_sample(tmp_path / "c", now=NOW, days=2, endpoints=2, seed=4)
    assert _dump(first.store_url) == _dump(again.store_url)
    assert _dump(first.store_url)["samples"] != _dump(other.store_url)["samples"]
    config = first.config_path.read_text().replace(str(tmp_path / "a"), "DIR")
    assert config == again.config_path.read_text().replace(str(tmp_path / "b"), "DIR")
    # Writing into the same folder again replaces the sample instead of adding to it.
    rewritten = write_sample(tmp_path / "a", now=NOW, days=2, endpoints=2, seed=3)
    assert _dump(rewritten.store_url) == _dump(again.store_url)


def test_every_table_has_rows_and_retention_shaped_it(sample: SampleSet) -> None:
    tables = _dump(sample.store_url)
    assert {name: bool(rows) for name, rows in tables.items()} == {name: True for name in tables}
    oldest_raw = min(row[3] for row in tables["samples"])
    assert oldest_raw >= str(NOW - timedelta(days=2))  # raw_days: 2, as a collector's store
    assert min(row[3] for row in tables["samples_1h"]) < str(NOW - timedelta(days=6))


def test_the_config_passes_the_check_and_names_every_endpoint(sample: SampleSet) -> None:
    assert check_config(sample.config_path) == []
    config = load_config(sample.config_path)
    names = [e.name for e in config.endpoints]
    assert names == ["chat-small", "chat-large", "code-assist", "embed", HOSTED]
    assert config.store.url == sample.store_url
    scheduled = [e for e in config.endpoints if e.autoscaling and e.autoscaling.schedules]
    assert len(scheduled) == 3
    assert {c.name for c in config.alerts.channels} == {"oncall-mail", "oncall-hook"}
    text = sample.config_path.read_text()
    assert "password:" not in text and "http" not in text.lower().replace("https://", "")


def test_names_past_the_fourth_are_numbered() -> None:
    assert endpoint_names(6) == ["chat-small", "chat-large", "code-assist", "embed", "svc-05", "svc-06"]


def test_estimated_gpu_cost_is_the_counted_replica_seconds_times_the_price(
    sample: SampleSet, store: Any
) -> None:
    config = load_config(sample.config_path)
    hour = (NOW - timedelta(hours=30)).replace(minute=0)  # in the one-minute raw data
    for endpoint in config.endpoints[:4]:
        price = endpoint.price.gpu_per_hour_usd * endpoint.price.gpus_per_replica  # type: ignore[union-attr]
        counted = store.read_series(
            endpoint.name, "ready_replica_seconds", hour, hour + timedelta(hours=1), "raw"
        )
        assert len(counted) == 60
        expected = sum(value for _, value in counted) / 3600 * price
        [row] = store.read_costs(hour, hour + timedelta(hours=1), endpoint.name, "estimated")
        assert (row.period_start, row.service) == (hour, "gpu")
        assert row.amount == pytest.approx(expected)


def test_spend_is_what_the_real_estimator_gives_for_the_counted_readings(
    sample: SampleSet, store: Any
) -> None:
    """Every hour of the one-minute data, and the spend over it, as the collector's own
    ``estimate_costs`` computes it from the readings the sample stored."""
    from collector.build import build_plan
    from collector.costs import estimate_costs
    from inferplane.vocabulary import Sample

    prices = build_plan(load_config(sample.config_path)).prices
    start = (NOW - timedelta(days=2)).replace(minute=0) + timedelta(hours=2)  # past the first raw hour
    for name, price in prices.items():
        readings = [
            Sample(at, name, metric, value)
            for metric in ("ready_replica_seconds", "prompt_tokens", "generated_tokens")
            for at, value in store.read_series(name, metric, start, NOW, "raw")
        ]
        expected = estimate_costs(name, price, readings, start, NOW)
        stored = store.read_costs(start, NOW, name, "estimated")
        assert [(c.period_start, c.period_end) for c in stored] == [
            (c.period_start, c.period_end) for c in expected
        ]
        assert [c.amount for c in stored] == pytest.approx([c.amount for c in expected])
        assert sum(c.amount for c in stored) > 0


def test_one_cost_row_per_hour_endpoint_service_and_source_the_current_hour_partial(store: Any) -> None:
    rows = store.read_costs(NOW - timedelta(days=8), NOW + timedelta(hours=1), source="estimated")
    keys = [(c.period_start, c.endpoint, c.service, c.source) for c in rows]
    assert len(keys) == len(set(keys))
    current = NOW.replace(minute=0)
    for row in rows:
        assert row.period_start.minute == 0
        if row.period_start == current:
            assert row.period_end == NOW  # the hour so far, as the last estimate left it
        else:
            assert row.period_end == row.period_start + timedelta(hours=1)
    assert {c.endpoint for c in rows if c.period_start == current} == {*endpoint_names(4), HOSTED}


def test_hosted_cost_is_tokens_times_token_prices(sample: SampleSet, store: Any) -> None:
    price = load_config(sample.config_path).endpoint(HOSTED).price
    hour = (NOW - timedelta(hours=20)).replace(minute=0)
    span = (hour, hour + timedelta(hours=1))
    prompt = sum(v * 60 for _, v in store.read_series(HOSTED, "prompt_tokens_per_second", *span, "raw"))
    generated = sum(v * 60 for _, v in store.read_series(HOSTED, "generated_tokens_per_second", *span, "raw"))
    [row] = store.read_costs(*span, HOSTED, "estimated")
    expected = prompt / 1000 * price.input_per_1k_usd + generated / 1000 * price.output_per_1k_usd  # type: ignore[union-attr]
    assert row.amount == pytest.approx(expected)


def test_billed_cost_is_daily_until_yesterday_and_a_little_above_the_estimate(store: Any) -> None:
    today = NOW.replace(hour=0, minute=0)
    start = today - timedelta(days=8)
    billed = store.read_costs(start, NOW, source="billed")
    assert {row.endpoint for row in billed} == {"chat-large", "embed", HOSTED}
    assert max(row.period_end for row in billed) == today
    for row in billed:
        assert row.period_end - row.period_start == timedelta(days=1)
        day = store.read_costs(row.period_start, row.period_end, row.endpoint, "estimated")
        estimated = sum(c.amount for c in day if c.period_start >= row.period_start)
        assert estimated * 1.03 + 0.8 - 0.01 <= row.amount <= estimated * 1.10 + 0.8 + 0.01


def test_scaling_events_match_the_replica_counts_and_go_to_zero_off_hours(store: Any) -> None:
    start = NOW - timedelta(days=2)
    events = [e for e in store.read_scaling_events(start, NOW) if e["from_replicas"] != e["to_replicas"]]
    assert events
    for event in events:
        # The collection after the poll reads the count the policy set.
        after = store.read_series(
            event["endpoint"], "replicas", event["time"], event["time"] + timedelta(minutes=20), "raw"
        )
        if after:
            assert after[0][1] == event["to_replicas"]
        assert event["reason"].startswith(f"{event['from_replicas']} -> {event['to_replicas']}: ")
        assert event["inputs"]["cost_after_usd_per_hour"] >= 0
    to_zero = [e for e in events if e["to_replicas"] == 0]
    assert to_zero and all("off-hours (outside every uptime window), floor 0" in e["reason"] for e in to_zero)
    # Holds are recorded every poll over the last two hours, as the engine records them.
    holds = [e for e in store.read_scaling_events(NOW - timedelta(hours=1), NOW) if e["endpoint"] == "embed"]
    assert len(holds) == 60


def test_each_decision_judged_the_window_the_store_holds(sample: SampleSet, store: Any) -> None:
    """The policy's inputs are what ``read_window`` reads from the sample store itself at
    the decision's time: the loop's readings are the stored ones."""
    from autoscaler.readings import read_window

    config = load_config(sample.config_path)
    events = store.read_scaling_events(NOW - timedelta(hours=40), NOW)
    assert len(events) > 100
    for event in events[:: max(1, len(events) // 60)]:
        endpoint = config.endpoint(event["endpoint"])
        assert endpoint.autoscaling is not None
        window = read_window(
            store, endpoint.name, endpoint.autoscaling, event["from_replicas"], None, event["time"]
        )
        newest = [r.value for r in window.gpu_utilization if event["time"] - r.time <= timedelta(seconds=60)]
        if event["inputs"]["utilization_out"] is None:
            assert not newest
        else:
            assert event["inputs"]["utilization_out"] == pytest.approx(sum(newest) / len(newest), abs=1e-4)
        waiting = window.requests_waiting[0].value if window.requests_waiting else None
        assert event["inputs"]["requests_waiting"] == (
            None if waiting is None else pytest.approx(waiting, abs=1e-4)
        )


def test_every_recorded_decision_is_the_real_policys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import commands.sample_loop as loop
    from autoscaler.policy import decide

    returned: dict[tuple[datetime, str, int], str] = {}

    def spy(window: Any, endpoint: Any, state: Any, now: datetime, capacity: Any = None) -> Any:
        decision = decide(window, endpoint, state, now, capacity)
        returned[(now, endpoint.name, window.replicas)] = decision.reason
        return decision

    monkeypatch.setattr(loop, "decide", spy)
    small = write_sample(tmp_path, now=NOW, days=1, endpoints=2)
    opened = open_store(small.store_url)
    try:
        events = opened.read_scaling_events(NOW - timedelta(days=2), NOW)
    finally:
        opened.close()
    actions = [e for e in events if e["from_replicas"] != e["to_replicas"]]
    assert actions and len(returned) > 1000
    for event in events:
        assert returned[(event["time"], event["endpoint"], event["from_replicas"])] == event["reason"]
    reasons = " | ".join(e["reason"] for e in actions)
    for wording in ("> 80%", "< 30%", "off-hours (outside every uptime window)", "uptime window"):
        assert wording in reasons


def test_the_estimate_run_every_minute_leaves_the_same_rows_as_every_hour(tmp_path: Path) -> None:
    import random

    from commands.sample import _config_yaml
    from commands.sample_loop import HOUR, run_endpoint, tick_times
    from commands.sample_sim import MINUTE, World, profiles
    from inferplane.config.loader import parse_config

    end = NOW
    start, raw_from = tick_times(end, 1)
    profile = profiles(1)[0]
    endpoint = parse_config(_config_yaml([profile], "sqlite:///unused.db", 10.0)).endpoint(profile.name)
    rows = []
    for every in (MINUTE, HOUR):
        opened = open_store(f"sqlite:///{tmp_path}/{every.seconds}.db")
        world = World(profile, start, end, random.Random(5), timedelta(seconds=60))
        run_endpoint(opened, endpoint, world, start, raw_from, end, estimate_every=every)
        rows.append(opened.read_costs(start, end + timedelta(hours=1)))
        opened.close()
    assert rows[0] == rows[1] and len(rows[0]) == 25  # 24 whole hours and the one under way


def test_recent_reads_as_the_store_reads(tmp_path: Path) -> None:
    """The loop's in-memory readings answer ``read_series`` and ``read_by_replica`` as the
    store does ([start, end), oldest first, the mean over replicas with ``replica=None``)."""
    from commands.sample_loop import Recent
    from inferplane.vocabulary import Sample

    samples = [
        Sample(NOW + timedelta(seconds=20 * i), "a", "gpu_utilization", i / 10, replica)
        for i in range(30)
        for replica in ("r1", "r2")
        if not (replica == "r2" and i % 4 == 0)
    ] + [Sample(NOW + timedelta(seconds=30 * i), "a", "requests_waiting", float(i)) for i in range(20)]
    recent = Recent(timedelta(hours=1))
    recent.write_samples(samples)
    opened = open_store(f"sqlite:///{tmp_path}/store.db")
    opened.write_samples(samples)
    try:
        for start, end in ((0, 600), (35, 240), (40, 41), (580, 900)):
            span = (NOW + timedelta(seconds=start), NOW + timedelta(seconds=end))
            for metric in ("gpu_utilization", "requests_waiting"):
                assert recent.read_by_replica("a", metric, *span) == opened.read_by_replica(
                    "a", metric, *span, "raw"
                )
                for replica in (None, "", "r1"):
                    mine = recent.read_series("a", metric, *span, replica=replica)
                    theirs = opened.read_series("a", metric, *span, "raw", replica=replica)
                    assert [t for t, _ in mine] == [t for t, _ in theirs]
                    assert [v for _, v in mine] == pytest.approx([v for _, v in theirs])
    finally:
        opened.close()


def test_alerts_fire_before_they_resolve_and_each_has_deliveries(sample: SampleSet, store: Any) -> None:
    start = NOW - timedelta(days=8)
    events = store.read_alert_events(start, NOW + timedelta(days=1))
    assert {e["rule"] for e in events} >= {"token_spike", "idle_gpu", "latency_slo", "spend_budget"}
    status: dict[str, str] = {}
    for event in events:
        assert event["status"] != status.get(event["fingerprint"]), "a transition repeats"
        assert event["status"] == "firing" or event["fingerprint"] in status
        status[event["fingerprint"]] = event["status"]
    firing = {fp for fp, s in status.items() if s == "firing"}
    assert firing
    saved = store.load_state("alerts")
    assert {record["finding"]["rule"] for record in saved["firing"]} >= {"spend_budget"}
    assert len(saved["firing"]) == len(firing)
    deliveries = store.read_deliveries(start, NOW + timedelta(days=1))
    assert {d["fingerprint"] for d in deliveries} == set(status)
    assert {d["channel"] for d in deliveries} == {"oncall-mail", "oncall-hook"}
    assert all("://" not in (d["error"] or "") for d in deliveries)
    assert any(not d["ok"] for d in deliveries) and any(d["attempt"] == 2 and d["ok"] for d in deliveries)


def test_a_source_gap_leaves_a_hole_in_the_readings(store: Any) -> None:
    [(source, endpoint, gap_start, gap_end, reason)] = store.read_gaps(NOW - timedelta(days=8), NOW)
    assert (source, endpoint) == ("prom", "chat-large") and "Connection refused" in reason
    assert store.read_series(endpoint, "replicas", gap_start, gap_end, "raw") == []
    assert store.read_series(endpoint, "replicas", gap_end, gap_end + timedelta(minutes=5), "raw")


def test_the_replay_comparison_has_the_shape_replay_json_prints(store: Any) -> None:
    saved = store.load_state("replay:sample")
    printed = ("endpoint", "trace", "requests", "time_scale", "load_scale", "ttft_target_seconds")
    assert set(saved) == {*printed, "runtime_seconds", "rows"}  # cli_replay's --json keys
    assert [sorted(row) for row in saved["rows"]] == [sorted(COLUMNS)] * 5  # ReplayRow.as_json's keys
    assert [row["policy"] for row in saved["rows"]][:2] == ["configured", "static_peak"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"now": NOW, "days": 0}, "at least 1 day"),
        ({"now": NOW, "endpoints": 0}, "at least 1 day and 1 endpoint"),
        ({"now": NOW.replace(tzinfo=None)}, "timezone-aware"),
    ],
    ids=["no days", "no endpoints", "naive now"],
)
def test_bad_arguments_are_refused_with_the_reason(tmp_path: Path, kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_sample(tmp_path, **kwargs)
    assert not (tmp_path / "sample.db").exists()


# --- the render-time benchmark over the sample ------------------------------------------


def test_bench_summary_takes_medians_and_flags_pages_over_the_goal() -> None:
    from commands.cli_bench_dashboard import COLD, format_report, summarize

    timings = {
        "overview": {"cold": [1.0, 3.0, 1.5], "warm": [0.2, 0.3, 0.1]},
        "alerts": {"cold": [2.5, 2.6, 2.1], "warm": [0.3, 0.3, 0.3]},
    }
    report = summarize(timings, {"rows": {"samples": 10}}, 12.34, {"days": 1, "endpoints": 1, "runs": 3})
    overview, alerts = report["pages"]["overview"], report["pages"]["alerts"]
    assert (overview["cold_median_s"], overview["warm_median_s"], overview["cold_max_s"]) == (1.5, 0.2, 3.0)
    assert (overview["within_goal"], alerts["within_goal"], report["all_within_goal"]) == (True, False, False)
    assert report["machine"]["cores"] and report["sample_generation_s"] == 12.3
    # The output says what "cold" means: caches cleared, Streamlit's start-up not counted.
    assert "cleared" in report["cold"] and "uncounted" in report["cold"]
    assert COLD in format_report(report).splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "sqlite:///x.db"], "--store and --config go together"),
        (["--store", "sqlite:///x.db", "--config", "missing.yaml"], "no such file"),
        (["--runs", "0"], "greater than or equal to 1"),
    ],
    ids=["store without config", "missing config", "no runs"],
)
def test_bench_refuses_bad_options_with_exit_2(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from commands.cli import app

    result = CliRunner().invoke(app, ["bench", "dashboard", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.slow
def test_bench_renders_every_page_of_the_app_over_a_small_sample() -> None:
    import json

    from typer.testing import CliRunner

    from commands.cli import app

    result = CliRunner().invoke(
        app, ["bench", "dashboard", "--days", "1", "--endpoints", "1", "--runs", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pages = sorted(
        p.stem for p in (Path(__file__).resolve().parent.parent / "dashboard" / "views").glob("*.py")
    )
    assert sorted(report["pages"]) == pages and len(pages) == 5
    for figures in report["pages"].values():
        assert 0 < figures["warm_median_s"] and 0 < figures["cold_median_s"] <= figures["cold_max_s"]
    assert report["data"]["rows"]["samples"] > 0 and report["settings"] == {
        "days": 1,
        "endpoints": 1,
        "runs": 1,
        "range": "Last 24 hours",  # the range that covers the data
    }


@pytest.mark.parametrize(
    ("days", "label"),
    [
        (1, "Last 24 hours"),
        (2, "Last 7 days"),
        (7, "Last 7 days"),
        (30, "Last 30 days"),
        (90, "Last 30 days"),
    ],
)
def test_bench_shows_the_shortest_range_that_covers_the_data(days: int, label: str) -> None:
    from commands.cli_bench_dashboard import range_label

    assert range_label(days) == label


def test_bench_renders_each_page_over_the_range_it_is_given(
    sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commands.cli_bench_dashboard import measure_pages
    from dashboard import ui

    seen: list[str] = []
    real = ui.view

    def spy() -> Any:
        current = real()
        seen.append(current.range_label)
        return current

    monkeypatch.setattr(ui, "view", spy)
    timings = measure_pages(sample.store_url, sample.config_path, 1, "Last 30 days")
    assert len(timings) == 5
    # Per page: the uncounted render at the default range, then cold and warm at 30 days.
    assert seen.count("Last 30 days") >= 2 * 5 and set(seen) <= {"Last 7 days", "Last 30 days"}
