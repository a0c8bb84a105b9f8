"""``inferplane alerts ...`` and ``inferplane bench alerts`` through the real CLI, against a
real HTTP receiver and a SQLite store in a temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.cli_common import parse_duration
from inferplane.store import open_store
from tests.local_servers import Receiver, start_receiver
from tests.test_alert_engine import MINUTE, SPIKE_START, T0, _write_traffic

runner = CliRunner()

CONFIG = """\
endpoints:
  - name: chat
    target: {kind: local, model: some/model}
    price: {gpu_per_hour_usd: 1.5}
alerts:
  noise: {group_wait_s: 0}
  rules:
    - kind: token_spike
  channels:
    - {kind: webhook, name: hook, url_env: HOOK_URL}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with start_receiver() as started:
        yield started


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, str]:
    config = tmp_path / "inferplane.yaml"
    config.write_text(CONFIG)
    return config, f"sqlite:///{tmp_path / 'inferplane.db'}"


def _run(files: tuple[Path, str], *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    config, store = files
    result = runner.invoke(app, [*args, "--config", str(config), "--store", store], env=env)
    # A command names its configuration first (on stderr; bad options fail before that);
    # the rest is what it did.
    return result.exit_code, result.output.removeprefix(f"configuration: {config}\n")


def test_test_sends_through_the_named_channel_and_records_it(
    files: tuple[Path, str], receiver: Receiver
) -> None:
    code, output = _run(files, "alerts", "test", "hook", env={"HOOK_URL": receiver.url})
    assert code == 0, output
    assert "hook <- inferplane: delivered after 1 attempt(s)" in output
    assert receiver.json()["alerts"][0]["labels"]["alertname"] == "test"
    assert "TOKEN123" not in output  # the URL's token is never shown
    store = open_store(files[1])
    (delivery,) = store.read_deliveries(T0, T0.replace(year=2100))
    assert delivery["channel"] == "hook" and delivery["ok"]
    store.close()


def test_test_reports_a_failing_channel_and_exits_1(files: tuple[Path, str], receiver: Receiver) -> None:
    receiver.statuses = [503, 503, 503]
    code, output = _run(files, "alerts", "test", "hook", env={"HOOK_URL": receiver.url})
    assert code == 1 and "FAILED" in output and "HTTP 503" in output and "after 3 attempt(s)" in output


@pytest.mark.parametrize(
    ("name", "args", "env", "words"),
    [
        ("unknown channel", ["alerts", "test", "pager"], {"HOOK_URL": "http://127.0.0.1:9/x"},
         "no channel named 'pager'; channels: hook"),
        ("secret not set", ["alerts", "test", "hook"], {}, "HOOK_URL is not set"),
        ("bad duration", ["alerts", "silence", "--for", "2x", "--comment", "c", "--endpoint", "chat"], {},
         "--for: duration '2x'"),
        ("silence of everything", ["alerts", "silence", "--for", "2h", "--comment", "c"], {},
         "name what to silence"),
        ("no such silence", ["alerts", "unsilence", "7"], {}, "no active silence #7"),
        ("silence of no endpoint",
         ["alerts", "silence", "--for", "2h", "--comment", "c", "--endpoint", "chatt"],
         {}, "--endpoint 'chatt': no such endpoint in the config; endpoints: chat"),
        ("webhook URL not a URL", ["alerts", "test", "hook"], {"HOOK_URL": "s3cret-token"},
         "environment variable HOOK_URL must hold an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(
    files: tuple[Path, str], name: str, args: list[str], env: dict[str, str], words: str
) -> None:
    code, output = _run(files, *args, env=env)
    assert code == 2, name
    assert words in output, (name, output)
    assert "s3cret" not in output


def test_silence_list_unsilence(files: tuple[Path, str]) -> None:
    code, output = _run(
        files, "alerts", "silence", "--for", "2h", "--comment", "deploy", "--endpoint", "chat"
    )
    assert code == 0 and output.startswith("silence #1 until")
    code, output = _run(files, "alerts", "list")
    assert code == 0 and "silences: 1" in output and "#1 endpoint=chat until" in output and "deploy" in output
    assert _run(files, "alerts", "unsilence", "1") == (0, "silence #1 ended\n")
    assert "silences: 0" in _run(files, "alerts", "list")[1]


def test_evaluate_once_then_list_shows_the_firing_alert(files: tuple[Path, str], receiver: Receiver) -> None:
    store = open_store(files[1])
    # The CLI evaluates at the real clock: lay the recorded traffic so that it ends now.
    shift = datetime.now(UTC).replace(second=0, microsecond=0) - (T0 + (SPIKE_START + 3) * MINUTE)
    _write_traffic(store, 0, SPIKE_START + 3, shift=shift)
    store.rollup(datetime.now(UTC))
    store.close()
    code, output = _run(files, "alerts", "evaluate", "--once", env={"HOOK_URL": receiver.url})
    assert code == 0, output
    assert "1 finding(s)" in output
    assert "x the baseline" in output and "hook <- chat: delivered" in output
    code, output = _run(files, "alerts", "list")
    assert "firing now: 1" in output and "transitions in the last 24 h: 1" in output
    assert "[1 delivered, 0 failed attempts]" in output


def test_bench_alerts_json_and_a_missing_trace(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["bench", "alerts", "--seeds", "1", "--json", "--output", str(tmp_path / "a.json")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"precision", "recall", "median_detection_delay_seconds", "alerts_without_injection"} <= set(
        report
    )
    assert json.loads((tmp_path / "a.json").read_text()) == report
    result = runner.invoke(app, ["bench", "alerts", "--trace", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "no such file" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--spikes", "-1"], "--spikes must be at least 1, got -1"),
        (["--spike-minutes", "0"], "--spike-minutes must be at least 1, got 0"),
        (["--spike-factor", "-2"], "--spike-factor must be a finite number above 1"),
        (["--output", "/nonexistent-folder/x.json"], "--output /nonexistent-folder/x.json: No such file"),
    ],
)
def test_bench_alerts_refuses_bad_options_before_it_runs(extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "alerts", *extra])
    assert result.exit_code == 2 and message in result.output


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1.5h").total_seconds() == 5400
    with pytest.raises(ValueError, match="positive"):
        parse_duration("0m")
    for endless in ("99999999d", "1" + "0" * 30 + "d"):  # past any date: refused, not an overflow
        with pytest.raises(ValueError, match="longer than 3650 days"):
            parse_duration(endless)


def test_config_check_names_a_bad_spike_setting(tmp_path: Path) -> None:
    path = tmp_path / "inferplane.yaml"
    path.write_text(
        CONFIG.replace("    - kind: token_spike\n", "    - {kind: token_spike, baseline_minutes: 10}\n")
    )
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:8: alerts.rules[0].baseline_minutes" in result.output and "60" in result.output


def test_the_evaluation_loop_runs_until_sigterm(files: tuple[Path, str], receiver: Receiver) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.local_servers import wait_for

    config, url = files
    config.write_text(CONFIG.replace("alerts:\n", "alerts:\n  evaluate_every_s: 0.5\n"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "commands.cli",
            "alerts",
            "evaluate",
            "--config",
            str(config),
            "--store",
            url,
        ],
        env={**os.environ, "HOOK_URL": receiver.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        store = open_store(url)
        wait_for(lambda: store.load_state("alerts") is not None, 60, "a scheduled evaluation")
        store.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "evaluating alerts every 0.5 s" in output
