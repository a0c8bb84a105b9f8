"""``inferplane up``: the supervisor alone (small Python children), the config checks
before anything starts, and the whole stack live (router with a real replica, control
plane, the dashboard command) in a fresh ``INFERPLANE_HOME``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from commands.up import ChildSpec, Supervisor, group_members, restart_delay
from tests.local_servers import free_port, streamlit_healthy, wait_for

CLI = [sys.executable, "-m", "commands.cli"]


# --- the supervisor, with small Python children ---------------------------------------


def python(tmp_path: Path, name: str, code: str) -> ChildSpec:
    return ChildSpec(name, [sys.executable, "-c", textwrap.dedent(code)], tmp_path / f"{name}.log")


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_failing_child_is_restarted_with_backoff_and_the_others_keep_running(tmp_path: Path) -> None:
    failing = python(tmp_path, "failing", "import sys; print('bad config'); sys.exit(3)")
    steady = python(tmp_path, "steady", "import time; time.sleep(600)")
    supervisor = Supervisor([failing, steady])
    supervisor.start()
    try:
        failing_child, steady_child = supervisor.children
        first_steady_pid = steady_child.pid

        def restarted_twice() -> bool:
            supervisor.tick()
            return failing_child.restarts >= 2

        started = time.monotonic()
        wait_for(restarted_twice, 20, "two restarts of the failing child")
        # 1 s then 2 s of backoff: a restart loop without backoff would take milliseconds.
        assert time.monotonic() - started >= 2.5
        assert failing_child.failures >= 2
        assert steady_child.pid == first_steady_pid and steady_child.restarts == 0
        assert "bad config" in (tmp_path / "failing.log").read_text()
    finally:
        assert supervisor.stop(timeout_s=10)
    assert all(not group_members(g) for child in supervisor.children for g in child.groups)


def test_stop_kills_what_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    # A child that ignores SIGTERM and has a child of its own (as the router has replicas).
    stubborn = python(
        tmp_path,
        "stubborn",
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import signal, time; "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print("started", flush=True)
        time.sleep(600)
        """,
    )
    supervisor = Supervisor([stubborn])
    supervisor.start()
    (child,) = supervisor.children
    wait_for(lambda: "started" in (tmp_path / "stubborn.log").read_text(), 20, "the child's child")
    (group,) = child.groups
    wait_for(lambda: len(group_members(group)) == 2, 10, "two processes in the group")
    started = time.monotonic()
    assert supervisor.stop(timeout_s=1) is False  # had to kill
    assert time.monotonic() - started < 10
    assert group_members(group) == []


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    # The supervisor itself as a process: kill -9 it, its child must go too (PDEATHSIG).
    pid_file = tmp_path / "child.pid"
    script = f"""
        import sys, time
        from pathlib import Path
        from commands.up import ChildSpec, Supervisor
        spec = ChildSpec("sleeper", [sys.executable, "-c",
            "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"],
            Path({str(tmp_path / "sleeper.log")!r}))
        Supervisor([spec]).start()
        time.sleep(600)
    """
    supervisor = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, "the child's pid")
        child = int(pid_file.read_text())
        supervisor.kill()
        supervisor.wait(10)
        wait_for(lambda: not group_members(child), 10, "the orphaned child to stop")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


# --- checks before anything starts ------------------------------------------------------


def test_the_built_in_config_passes_config_check(tmp_path: Path) -> None:
    printed = subprocess.run([*CLI, "config", "example"], capture_output=True, text=True, check=True)
    path = tmp_path / "inferplane.yaml"
    path.write_text(printed.stdout)
    checked = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "OK" in checked.stdout


def up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``inferplane up`` in a fresh home, as a process (it sets up logging and signals)."""
    env = {**os.environ, "INFERPLANE_HOME": str(tmp_path / "home")}
    return subprocess.run([*CLI, "up", *args], capture_output=True, text=True, env=env, timeout=120)


def test_prometheus_scrapes_what_the_config_scrapes(tmp_path: Path) -> None:
    from commands.up_prometheus import prometheus_config
    from inferplane.config import load_config

    generated = prometheus_config(load_config(write_config(tmp_path, Ports(8100, 8101, 8501))))
    assert generated is not None
    (job,) = generated["scrape_configs"]
    assert (job["job_name"], job["scrape_interval"], job["metrics_path"]) == ("scrape", "1s", "/metrics")
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:8100"], "labels": {"endpoint": "chat"}},
        {"targets": ["127.0.0.1:8101"], "labels": {"endpoint": "chat", "replica": "r1"}},
    ]
    if shutil.which("promtool"):
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(generated))
        checked = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_plan_skips_prometheus_when_its_port_is_taken(tmp_path: Path) -> None:
    import socket

    from commands.up_plan import UpOptions, plan_up
    from inferplane.config import load_config

    config = load_config(write_config(tmp_path, Ports(free_port(), free_port(), free_port())))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = UpOptions(tmp_path, tmp_path / "home", "sqlite://", prometheus_port=taken.getsockname()[1])
        names = [child.name for child in plan_up(config, options).children]
    assert names == ["router-chat", "control-plane", "dashboard"]
    free = UpOptions(tmp_path, tmp_path / "home", "sqlite://", prometheus_port=free_port(), dashboard=False)
    names = [child.name for child in plan_up(config, free).children]
    assert names == ["router-chat", "control-plane", *(["prometheus"] if shutil.which("prometheus") else [])]


def test_every_child_opens_up_s_store_and_no_argv_holds_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commands.cli_dashboard import _store_url
    from commands.up_plan import UpOptions, plan_up
    from inferplane.config import load_config
    from inferplane.store import STORE_URL_ENV, resolve_store_url

    config_path = write_config(tmp_path, Ports(free_port(), free_port(), free_port()))
    url = "postgresql+psycopg://inferplane:s3cret-pw@127.0.0.1:5432/test"
    options = UpOptions(config_path, tmp_path / "home", url, prometheus=False)
    children = plan_up(load_config(config_path), options).children
    assert [child.name for child in children] == ["router-chat", "control-plane", "dashboard"]
    for child in children:
        assert not any("s3cret-pw" in arg for arg in child.argv), child.argv
        assert child.env is not None and child.env[STORE_URL_ENV] == url
    # What the control plane and the dashboard resolve from that environment, over the
    # config's own store (the example's default SQLite):
    environ = children[1].env
    assert resolve_store_url(None, "sqlite:///other.db", None, environ) == url
    monkeypatch.setenv(STORE_URL_ENV, url)
    assert _store_url(None, config_path) == url  # the dashboard's resolution
    assert resolve_store_url("sqlite:///given.db", None, None, environ) == "sqlite:///given.db"


def test_up_with_a_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "endpoints:\n"
        "  - name: chat\n"
        "    target: {kind: local, model: smollm2-135m-instruct}\n"
        "    max_replicas: 0\n"
        "    price: {gpu_per_hour_usd: 1}\n"
    )
    result = up(tmp_path, "--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: endpoints[0].max_replicas" in result.stderr
    assert not (tmp_path / "home" / "logs").exists(), "nothing may start on a bad config"


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, Ports(port, free_port(), free_port()))
        result = up(tmp_path, "--config", str(config), "--no-dashboard")
    assert result.returncode == 2
    assert f"port {port} (endpoints[0].target.router_url of chat) is in use" in result.stderr


# --- the whole stack, live -------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    router: int
    replica: int
    dashboard: int
    prometheus: int = 0


def write_config(tmp_path: Path, ports: Ports) -> Path:
    router = f"http://127.0.0.1:{ports.router}"
    path = tmp_path / "inferplane.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        endpoints:
          - name: chat
            target: {{kind: local, model: smollm2-135m-instruct, router_url: "{router}",
                      ports: [{ports.replica}, {ports.replica}]}}
            min_replicas: 1
            max_replicas: 1
            price: {{gpu_per_hour_usd: 1.2}}
            autoscaling: {{poll_interval_s: 1}}
        sources:
          - kind: scrape
            interval_s: 1
            timeout_s: 2
            retries: 0
            targets:
              - {{endpoint: chat, url: "{router}/metrics"}}
              - {{endpoint: chat, url: "http://127.0.0.1:{ports.replica}/metrics", replica: "r1"}}
        alerts:
          evaluate_every_s: 2
          rules: [{{kind: scaling}}]
        """)
    )
    return path


@dataclass
class Stack:
    process: subprocess.Popen[str]
    ready_file: Path
    home: Path
    router: str

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.ready_file.read_text()))

    def output(self) -> str:
        return (self.home / "up.out").read_text(errors="replace")


@pytest.fixture
def stack(tmp_path: Path, model_path: str) -> Iterator[Stack]:
    home = tmp_path / "home"
    home.mkdir()
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    config = write_config(tmp_path, ports)
    ready_file = tmp_path / "ready.json"
    env = {**os.environ, "INFERPLANE_HOME": str(home)}
    command = [
        *CLI, "up", "--config", str(config), "--dashboard-port", str(ports.dashboard),
        "--prometheus-port", str(ports.prometheus), "--ready-file", str(ready_file), "--stop-timeout", "30",
    ]  # fmt: skip
    with (home / "up.out").open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    running = Stack(process, ready_file, home, f"http://127.0.0.1:{ports.router}")

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode}:\n{running.output()}")
        return ready_file.exists()

    try:
        wait_for(ready, 180, "inferplane up to be ready")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def _samples_since(home: Path, since: datetime) -> datetime | None:
    from inferplane.store import open_store

    store = open_store(f"sqlite:///{home / 'inferplane.db'}")
    try:
        last = store.last_sample_time("chat")
    finally:
        store.close()
    return last if last is not None and last > since else None


def _scraped_up(prometheus: str) -> bool:
    query = httpx.get(f"{prometheus}/api/v1/query", params={"query": 'up{endpoint="chat"} == 1'}, timeout=5)
    return len(query.json()["data"]["result"]) == 2


def _pids(state: dict[str, Any]) -> dict[str, int | None]:
    return {name: child["pid"] for name, child in state["children"].items()}


@pytest.mark.slow
def test_up_serves_collects_restarts_the_control_plane_and_stops_cleanly(stack: Stack) -> None:
    assert f"{stack.router}/v1" in stack.output() and "inferplane is up" in stack.output()
    state = stack.state()
    assert state["urls"]["api chat"] == f"{stack.router}/v1"
    assert state["urls"]["store"] == f"sqlite:///{stack.home / 'inferplane.db'}"

    answer = httpx.post(
        f"{stack.router}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] > 0
    metrics = httpx.get(f"{stack.router}/metrics", timeout=10)
    assert metrics.status_code == 200 and "inferplane_router_ready_replicas" in metrics.text

    started = datetime.now(UTC) - timedelta(seconds=1)
    wait_for(lambda: _samples_since(stack.home, started), 60, "samples from the control plane")
    if shutil.which("prometheus"):  # Debian's, installed by test.sh: it scrapes the same targets
        prometheus = state["urls"]["prometheus"]
        wait_for(lambda: _scraped_up(prometheus), 60, "Prometheus scraping the router and the replica")

    # kill -9 the control plane: the supervisor starts a new one; the router is untouched.
    before = _pids(state)
    assert before["control-plane"] and before["router-chat"]
    os.kill(before["control-plane"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        now = stack.state()
        pid = now["children"]["control-plane"]["pid"]
        scheduled = (stack.home / "run" / "control-plane.ready").exists()
        return now if scheduled and pid not in (None, before["control-plane"]) else None

    after = wait_for(restarted, 60, "a new control plane")
    assert after["children"]["control-plane"]["restarts"] == 1
    assert _pids(after)["router-chat"] == before["router-chat"]
    assert "control-plane exited with signal SIGKILL" in stack.output()
    again = datetime.now(UTC)
    wait_for(lambda: _samples_since(stack.home, again), 60, "samples from the restarted control plane")

    # The dashboard command may fail (or run): either way it never stopped the others.
    groups = [g for child in after["children"].values() for g in child["groups"]]
    replica_pids = group_members(before["router-chat"])
    assert len(replica_pids) >= 2, "the router and its replica share the router's group"

    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0, stack.output()
    assert [g for g in groups if group_members(g)] == []
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in replica_pids)
    assert not stack.ready_file.exists()


def _overview_renders(url: str) -> None:
    """The dashboard under ``up`` serves a page that renders (healthy is not enough: a
    dashboard that fails on its first page still answers /_stcore/health)."""
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard_browser import _ERROR_TEXT, CHROMIUM_ARGS, _chromium, _rendered

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            _rendered(page)
            page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            text = page.locator('[data-testid="stMain"]').inner_text()
            assert not _ERROR_TEXT.search(text), text[:2000]
        finally:
            browser.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


DEFAULT_PORTS = {
    8100: "router", 8101: "replica", 8102: "replica", 8103: "replica", 8501: "dashboard",
    1025: "mail catcher", 9095: "webhook receiver",
}  # fmt: skip


@pytest.mark.slow
def test_the_readme_run_command_with_the_built_in_config(tmp_path: Path, model_path: str) -> None:
    """``inferplane up`` exactly as ``./run.sh`` runs it: no config, the default ports."""
    from commands.up_plan import busy_ports

    if busy := busy_ports(DEFAULT_PORTS):
        if os.environ.get("CI"):  # CI's machine is ours: a busy port there is a failure
            pytest.fail(f"a default port is taken: {busy[0]}; the README's command must run in CI")
        pytest.skip(f"a default port is taken on this machine: {busy[0]}")
    home = tmp_path / "home"
    env = {**os.environ, "INFERPLANE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    ready_file = tmp_path / "ready.json"
    command = [*CLI, "up", "--ready-file", str(ready_file), "--no-prometheus", "--stop-timeout", "30"]
    out_path = tmp_path / "up.out"
    with out_path.open("w") as out:
        # In a folder without an inferplane.yaml, as a new user's clone is.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"up exited with {process.returncode}:\n{out_path.read_text()}")
            return ready_file.exists()

        wait_for(ready, 180, "inferplane up with the built-in config")
        printed = out_path.read_text()
        for line in ("api chat      http://127.0.0.1:8100/v1", "metrics chat  http://127.0.0.1:8100/metrics",
                     "dashboard     http://127.0.0.1:8501", "mail catcher  smtp://127.0.0.1:1025",
                     "webhook       http://127.0.0.1:9095/alerts"):  # fmt: skip
            assert line in printed, printed
        assert (home / "run" / "inferplane.yaml").read_text().startswith("# inferplane.yaml — the built-in")
        assert f"configuration: the built-in one ({home / 'run' / 'inferplane.yaml'})" in printed
        answer = httpx.post(
            "http://127.0.0.1:8100/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        wait_for(lambda: streamlit_healthy("http://127.0.0.1:8501"), 120, "the dashboard")
        _overview_renders("http://127.0.0.1:8501")
        children = json.loads(ready_file.read_text())["children"]
        groups = [g for child in children.values() for g in child["groups"]]
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=90) == 0, out_path.read_text()
        assert [g for g in groups if group_members(g)] == [], "every child stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
