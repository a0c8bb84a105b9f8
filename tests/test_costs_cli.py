"""``inferplane costs``: the figures of a store through the command line, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytest import approx
from typer.testing import CliRunner

from commands.cli import app
from inferplane.store import open_store
from inferplane.vocabulary import CostRow, Sample

runner = CliRunner()
NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)


def test_costs_reports_spend_tokens_and_the_projection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:  # 10:00-12:30 at $3.60/h, 600 tokens a minute read as counter increases
        hour = timedelta(hours=1)
        start = NOW.replace(hour=10, minute=0)
        periods = [
            (start, start + hour, 3.6),
            (start + hour, start + 2 * hour, 3.6),
            (start + 2 * hour, NOW, 1.8),
        ]
        store.write_costs([CostRow(a, b, "chat", "gpu", usd, "USD", "estimated") for a, b, usd in periods])
        store.write_samples(
            [
                Sample(start + i * timedelta(minutes=1), "chat", "prompt_tokens", 600.0, "r1")
                for i in range(150)
            ]
        )
    finally:
        store.close()
    result = runner.invoke(app, ["costs", "--store", url, "--at", NOW.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    chat = report["endpoints"]["chat"]
    assert chat["today_estimated"] == 9.0
    assert chat["tokens_today"] == 150 * 600
    assert chat["usd_per_1k_tokens_today"] == 9.0 / 90_000 * 1000
    # Readings began at 10:00: the rest of November at the $3.60/h they show.
    left = (datetime(2026, 12, 1, tzinfo=UTC) - NOW) / timedelta(hours=1)
    assert chat["projected_estimated"] == 9.0 + 3.6 * left
    assert report["projection"] == "at the rate since readings began (2.5 h)"
    table = runner.invoke(app, ["costs", "--store", url, "--at", NOW.isoformat()])
    assert table.exit_code == 0 and "chat" in table.stdout and "$9.00" in table.stdout


def test_a_bad_moment_names_the_option_and_the_format(tmp_path: Path) -> None:
    result = runner.invoke(app, ["costs", "--store", f"sqlite:///{tmp_path / 's.db'}", "--at", "noon"])
    assert result.exit_code == 2
    assert "--at 'noon'" in result.stderr and "ISO 8601" in result.stderr


def test_a_mistyped_store_path_is_refused_not_reported_as_empty(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-folder" / "store.db"
    result = runner.invoke(app, ["costs", "--store", f"sqlite:///{typo}"])
    assert result.exit_code == 2
    assert f"no store at {typo}" in result.stderr and "$0.00" not in result.output
    assert not typo.parent.exists()


def test_a_moment_out_of_range_names_the_option(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path / 's.db'}").close()
    result = runner.invoke(app, ["costs", "--store", f"sqlite:///{tmp_path / 's.db'}", "--at", "0001-01-01"])
    assert result.exit_code == 2 and "--at '0001-01-01'" in result.stderr


def test_an_unreachable_store_fails_clearly_without_its_password() -> None:
    url = "postgresql+psycopg://user:s3cret@127.0.0.1:1/none"
    result = runner.invoke(app, ["costs", "--store", url])
    assert result.exit_code == 2
    assert "s3cret" not in result.output and "127.0.0.1:1" in result.stderr


def test_an_endpoint_added_an_hour_ago_projects_at_its_own_rate(tmp_path: Path) -> None:
    """The collector's real estimate over two endpoints' readings: `old` ready since
    05:00 at $3.60/h, `new` since 11:30 at $10/h. Each projects at its own rate; `new`'s
    hour of spend is not spread over the six hours of `old`'s readings."""
    from collector.costs import GpuPrice
    from collector.run import Collector

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        at = NOW.replace(hour=5, minute=0)
        while at <= NOW:
            readings = [Sample(at, "old", "ready_replicas", 1.0)]
            if at >= NOW.replace(hour=11, minute=30):
                readings.append(Sample(at, "new", "ready_replicas", 1.0))
            store.write_samples(readings)
            at += timedelta(seconds=15)
        Collector(store, prices={"old": GpuPrice(3.6), "new": GpuPrice(10.0)}).estimate(NOW, hours=8)
    finally:
        store.close()
    result = runner.invoke(app, ["costs", "--store", url, "--at", NOW.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    endpoints = json.loads(result.stdout)["endpoints"]
    left = (datetime(2026, 12, 1, tzinfo=UTC) - NOW) / timedelta(hours=1)
    assert endpoints["new"]["month_estimated"] == approx(10.0)
    assert endpoints["new"]["projected_estimated"] == approx(10.0 + 10.0 * left)
    assert endpoints["old"]["projected_estimated"] == approx(3.6 * 7.5 + 3.6 * left)
