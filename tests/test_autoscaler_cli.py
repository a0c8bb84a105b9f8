"""``inferplane autoscaler ...`` and ``inferplane scale``: bad input fails with exit 2 and
a message; status and pause work against a real store; a target that cannot be reached
is reported, not a crash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.cli_common import parse_duration
from tests.local_servers import free_port

runner = CliRunner()


def config(tmp_path: Path, autoscaling: str = "    autoscaling: {}\n") -> Path:
    path = tmp_path / "inferplane.yaml"
    path.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n"
        "endpoints:\n"
        "  - name: chat\n"
        f"    target: {{kind: local, model: m, router_url: 'http://127.0.0.1:{free_port()}'}}\n"
        "    max_replicas: 3\n"
        "    price: {gpu_per_hour_usd: 1.0}\n" + autoscaling,
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scale", "chat", "2", "--for", "forever"], "duration 'forever' does not parse"),
        (["scale", "nope", "2"], "endpoint 'nope' is not in the config; autoscaled endpoints: chat"),
        (["scale", "chat", "9"], "9 replicas is outside 0..3"),
        (["autoscaler", "pause", "nope"], "endpoint 'nope' is not in the config"),
    ],
    ids=["bad-duration", "unknown-endpoint", "above-max", "pause-unknown"],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--config", str(config(tmp_path))])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_run_refuses_a_config_without_autoscaled_endpoints(tmp_path: Path) -> None:
    result = runner.invoke(app, ["autoscaler", "run", "--config", str(config(tmp_path, autoscaling=""))])
    assert result.exit_code == 2 and "no endpoint has an autoscaling section" in result.output


def test_a_bad_config_names_the_field(tmp_path: Path) -> None:
    path = config(tmp_path, "    autoscaling: {schedules: [{when: 'Mon-Fri 9-5'}]}\n")
    result = runner.invoke(app, ["autoscaler", "status", "--config", str(path)])
    assert (
        result.exit_code == 2
        and "autoscaling.schedules[0].when: schedule 'Mon-Fri 9-5' does not parse" in (result.output)
    )


def test_status_pause_and_an_unreachable_target(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert runner.invoke(app, ["autoscaler", "pause", "chat", "--config", str(path)]).exit_code == 0
    result = runner.invoke(app, ["autoscaler", "status", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("chat: target unreadable: ") and "[paused]" in result.stdout
    assert result.stderr == f"configuration: {path}\n"
    scaled = runner.invoke(app, ["scale", "chat", "2", "--for", "10m", "--config", str(path)])
    assert scaled.exit_code == 2 and "not applied" in scaled.output
    assert "target could not be read" in scaled.output


def test_off_hours_by_hand_is_stored_shown_in_status_and_ended(tmp_path: Path) -> None:
    from inferplane.schedule import OneOffDowntime, downtime_key
    from inferplane.store import open_store

    path = config(tmp_path)
    command = ["autoscaler", "off-hours", "chat", "--for", "20m", "--reason", "quiet week"]
    set_ = runner.invoke(app, [*command, "--config", str(path)])
    assert set_.exit_code == 0, set_.output
    assert re.search(r"chat: off-hours \d\d:\d\d:\d\d-\d\d:\d\d:\d\d UTC \(quiet week\)", set_.output)
    status = runner.invoke(app, ["autoscaler", "status", "--config", str(path)])
    assert "off-hours" in status.output and "(quiet week)" in status.output, status.output
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        stored = OneOffDowntime.from_json(store.load_state(downtime_key("chat")))
        assert stored is not None and (stored.until - stored.start).total_seconds() == 1200
        ended = runner.invoke(app, ["autoscaler", "off-hours", "chat", "--end", "--config", str(path)])
        assert ended.exit_code == 0 and "(ended)" in ended.output, ended.output
        after = OneOffDowntime.from_json(store.load_state(downtime_key("chat")))
        assert after is not None and after.until < stored.until
    finally:
        store.close()
    again = runner.invoke(app, ["autoscaler", "off-hours", "chat", "--end", "--config", str(path)])
    assert "nothing to end" in again.output
    unknown = runner.invoke(app, ["autoscaler", "off-hours", "nope", "--config", str(path)])
    assert unknown.exit_code == 2 and "endpoint 'nope' is not in the config" in unknown.output
