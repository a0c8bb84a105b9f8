"""``inferplane dashboard`` (a real Streamlit server on a free port, stopped by SIGTERM)
and ``inferplane replay --save`` (the comparison the autoscaler page charts)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from commands import cli_dashboard
from commands.cli import app
from commands.cli_dashboard import streamlit_argv
from inferplane.store import open_store
from tests.local_servers import free_port, streamlit_healthy, wait_for

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
_START_TIMEOUT_S = 90.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--sample-data", "--store", "sqlite:///x.db"], "leave out --store", id="sample-and-store"
        ),
        pytest.param(["--config", "no-such.yaml"], "no-such.yaml: no such file", id="missing-config"),
        pytest.param(["--port", "0"], "--port", id="port-out-of-range"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(args: list[str], expected: str) -> None:
    result = runner.invoke(app, ["dashboard", *args])
    assert result.exit_code == 2
    assert expected in result.output


def test_an_unreachable_store_is_named_without_its_password() -> None:
    url = f"postgresql+psycopg://viewer:s3cret-pw@127.0.0.1:{free_port()}/test"
    result = runner.invoke(app, ["dashboard", "--store", url])
    assert result.exit_code == 2
    assert "could not connect to the store" in result.output
    assert "s3cret-pw" not in result.output


def test_a_sqlite_store_that_does_not_exist_is_refused_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_dashboard, "_run", lambda argv, env: 0)  # never start Streamlit here
    missing = tmp_path / "typo" / "inferplane.db"
    result = runner.invoke(app, ["dashboard", "--store", f"sqlite:///{missing}"])
    assert result.exit_code == 2
    assert f"no store at {missing}" in result.output
    assert "inferplane up" in result.output and "--sample-data" in result.output
    assert not missing.exists() and not missing.parent.exists()


def test_streamlit_runs_headless_on_the_given_address_without_usage_statistics() -> None:
    argv = streamlit_argv("127.0.0.1", 8600)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == ROOT / "dashboard" / "app.py"
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "8600"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--client.toolbarMode"] == "minimal"  # no "Deploy" button for viewers


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.fixture
def running_dashboard(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str, Path]]:
    """``inferplane dashboard`` over a migrated (empty) store, as a user starts it."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(store).close()
    port = free_port()
    log = tmp_path / "dashboard.log"
    cli = Path(sys.executable).with_name("inferplane")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERPLANE_DASHBOARD_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(cli), "dashboard", "--store", store, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        yield process, url, store, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_dashboard_serves_on_localhost_gets_the_store_by_environment_and_stops_on_sigterm(
    running_dashboard: tuple[subprocess.Popen[bytes], str, str, Path],
) -> None:
    process, url, store, log = running_dashboard
    wait_for(lambda: streamlit_healthy(url) or process.poll() is not None, _START_TIMEOUT_S, "the dashboard")
    assert process.poll() is None, log.read_text(errors="replace")
    assert httpx.get(url, timeout=5).status_code == 200
    assert f"dashboard: {url}" in log.read_text()
    assert store not in log.read_text()  # the store URL is never printed
    (child,) = _children(process.pid)
    argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
    assert b"127.0.0.1" in argv and store.encode() not in b" ".join(argv)
    environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
    assert f"INFERPLANE_DASHBOARD_STORE={store}".encode() in environment
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert (
        not Path(f"/proc/{child}").exists() or b"Z" in Path(f"/proc/{child}/stat").read_bytes().split()[2:3]
    )


def _trace(tmp_path: Path) -> Path:
    trace = tmp_path / "t.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,500,5\n2023-11-16 18:00:01,700,5\n"
    )
    return trace


def test_replay_save_keeps_the_rows_for_the_dashboard(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    config = str(ROOT / "examples/replay-a100.yaml")
    args = ["replay", "--config", config, "--trace", str(_trace(tmp_path)), "--json", "--save", "nightly"]
    result = runner.invoke(app, [*args, "--store", store])
    assert result.exit_code == 0, result.output
    opened = open_store(store)
    try:
        saved = opened.load_state("replay:nightly")
    finally:
        opened.close()
    assert saved is not None and saved == json.loads(result.output)
    assert saved["rows"][0]["policy"] == "configured"


def test_replay_save_refuses_a_name_that_is_not_a_plain_word(tmp_path: Path) -> None:
    config = str(ROOT / "examples/replay-a100.yaml")
    result = runner.invoke(app, ["replay", "--config", config, "--save", "a b/c"])
    assert result.exit_code == 2
    assert "--save 'a b/c'" in result.output
