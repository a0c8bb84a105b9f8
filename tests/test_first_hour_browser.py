"""The first hour, in a real browser: ``inferplane up`` on the built-in configuration (its
ports moved to free loopback ports, nothing else changed), ``inferplane demo`` with a
short run and an early token spike, and the dashboard in headless Chromium (Debian's,
driven by Playwright). ``up`` starts the catchers only for the built-in channels' own
ports (1025, 9095: another port is the user's own server); on the moved ports the same
catchers run as ``inferplane catchers``, the command ``up`` would run.

Within three minutes of the demo's start the overview shows spend above $0.00 and a token
count that grows between two looks, and the cost chart has points a minute apart. The
token-spike alert reaches the local mail catcher and webhook receiver, and the Alerts
page shows those deliveries with the payload received; scaling notices (the built-in
config sends them to both channels) are not counted as firing alerts.

One thing is compressed: the spike rule judges a minute against at least 30 minutes of
the endpoint's own history, which a three-minute run has not got. Three quiet hours of
token readings are written to the store before ``up`` starts (as the readings of a
replica that served a trickle); the demo's spike is then judged against them, as the
default demo's spike at minute 32 is judged against its first half hour.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.local_servers import free_port, free_port_range, streamlit_healthy, wait_for
from tests.test_dashboard_browser import CHROMIUM_ARGS, _chromium, _rendered, _screenshot

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "commands.cli"]
DEMO_LIMIT_S = 180.0  # the "within 3 minutes" of the demo's start
QUIET_TOKENS_PER_SECOND = 2.0  # the seeded history: a trickle, well under the floor of 1000 a minute


@dataclass(frozen=True)
class Ports:
    router: int
    replicas: tuple[int, int]
    dashboard: int
    smtp: int
    webhook: int


def built_in_on(ports: Ports, path: Path) -> Path:
    """The built-in configuration with every port moved; the rest as shipped."""
    from inferplane.config import example_config_text

    text = example_config_text()
    first, last = ports.replicas
    moves = {
        "127.0.0.1:8100": f"127.0.0.1:{ports.router}",
        "ports: [8101, 8103]": f"ports: [{first}, {last}]",
        "127.0.0.1:8101/": f"127.0.0.1:{first}/",
        'replica: "8101"': f'replica: "{first}"',
        "127.0.0.1:8102/": f"127.0.0.1:{first + 1}/",
        'replica: "8102"': f'replica: "{first + 1}"',
        "127.0.0.1:8103/": f"127.0.0.1:{last}/",
        'replica: "8103"': f'replica: "{last}"',
        "port: 1025": f"port: {ports.smtp}",
        "127.0.0.1:9095/": f"127.0.0.1:{ports.webhook}/",
    }
    for old, new in moves.items():
        assert old in text, f"the built-in config no longer has {old!r}; update this test"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def seed_quiet_history(store_url: str, replica: str, now: datetime) -> None:
    """Three hours of a trickle of tokens and requests, a reading every 15 s, rolled up."""
    from collector.samples import Sample
    from inferplane.store import open_store

    store = open_store(store_url)
    try:
        samples = []
        at = now - timedelta(hours=3)
        while at < now - timedelta(minutes=1):
            samples += [
                Sample(at, "chat", "prompt_tokens_per_second", QUIET_TOKENS_PER_SECOND, replica),
                Sample(at, "chat", "generated_tokens_per_second", QUIET_TOKENS_PER_SECOND / 4, replica),
                Sample(at, "chat", "requests_per_second", 0.05, replica),
            ]
            at += timedelta(seconds=15)
        store.write_samples(samples)
        store.rollup(now)
    finally:
        store.close()


@dataclass
class Running:
    up: subprocess.Popen[str]
    catchers: subprocess.Popen[str]
    home: Path
    ports: Ports
    store_url: str

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"


@pytest.fixture
def stack(tmp_path: Path, model_path: str) -> Iterator[Running]:
    first, last = free_port_range(3)
    ports = Ports(free_port(), (first, last), free_port(), free_port(), free_port())
    home = tmp_path / "home"
    home.mkdir()
    config = built_in_on(ports, tmp_path / "inferplane.yaml")
    store_url = f"sqlite:///{home / 'inferplane.db'}"
    seed_quiet_history(store_url, str(first), datetime.now(UTC))
    ready_file = tmp_path / "ready.json"
    env = {**os.environ, "INFERPLANE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    command = [
        *CLI, "up", "--config", str(config), "--dashboard-port", str(ports.dashboard), "--no-prometheus",
        "--ready-file", str(ready_file), "--stop-timeout", "30",
    ]  # fmt: skip
    out = tmp_path / "up.out"
    with out.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
    catching = [
        *CLI, "catchers", "--smtp-port", str(ports.smtp), "--webhook-port", str(ports.webhook),
        "--store", store_url,
    ]  # fmt: skip
    with (tmp_path / "catchers.out").open("w") as log:
        catchers = subprocess.Popen(catching, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode}:\n{out.read_text()}")
        return ready_file.exists()

    try:
        wait_for(ready, 240, "inferplane up on the built-in configuration")
        wait_for(lambda: streamlit_healthy(f"http://127.0.0.1:{ports.dashboard}"), 120, "the dashboard")
        yield Running(process, catchers, home, ports, store_url)
    finally:
        catchers.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        try:
            catchers.wait(30)
        except subprocess.TimeoutExpired:
            catchers.kill()


def start_demo(stack: Running, log: Path) -> subprocess.Popen[str]:
    """A short demo: four minutes of load, prompts four times longer from its 30th second
    on (the spike), no off-hours act (it has its own test). The trace runs eight times
    faster with 3 % of its requests (about the default demo's request rate): at its own
    pace its first minutes hold a 135 s lull, and tokens that do not grow for lack of
    load would say nothing about the dashboard. Two requests in flight at most: on a
    shared 2-core machine a queue would start more replicas, whose model loading starves
    the one serving."""
    env = {**os.environ, "INFERPLANE_HOME": str(stack.home)}
    command = [
        *CLI, "demo", "--url", f"http://127.0.0.1:{stack.ports.router}", "--duration", "240",
        "--speed", "8", "--keep", "0.03",
        "--spike-at", "30", "--spike-seconds", "210", "--no-off-hours", "--progress-every", "15",
        "--concurrency", "2",
    ]  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)


def every(predicate: Any, timeout_s: float, what: str, pace_s: float = 10.0) -> Any:
    """``wait_for`` at a browser's pace: each look reloads a page and reruns its script, and
    the dashboard's reads are cached for 30 s, so looking more often only takes CPU."""
    deadline = time.monotonic() + timeout_s
    while True:
        if result := predicate():
            return result
        if time.monotonic() + pace_s > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(pace_s)  # pacing the looks, not synchronization: the predicate decides


def metric(page: Any, label: str) -> str:
    """The value of the metric card whose label starts with ``label``."""
    cards = page.locator('[data-testid="stMetric"]')
    for index in range(cards.count()):
        card = cards.nth(index)
        if card.locator('[data-testid="stMetricLabel"]').inner_text().strip().startswith(label):
            return str(card.locator('[data-testid="stMetricValue"]').inner_text().strip())
    raise AssertionError(f"no metric {label!r} on the page")


def money(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text) or "nan")


def count(text: str) -> float:
    """``1.2K``, ``3.4M``, ``987`` as a number."""
    match = re.fullmatch(r"([0-9.,]+)\s*([KMB]?)", text.replace("\u2009", ""))
    assert match, f"not a count: {text!r}"
    return float(match[1].replace(",", "")) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[match[2]]


def look(page: Any, url: str) -> None:
    page.goto(url, timeout=60_000)
    page.get_by_role("heading", name="Overview", exact=True).first.wait_for(timeout=60_000)
    _rendered(page)


def firing_in_store(store_url: str) -> int:
    """Alerts whose newest transition is firing (notices have no transitions: they never fire)."""
    from inferplane.store import open_store

    store = open_store(store_url)
    try:
        now = datetime.now(UTC)
        events = store.read_alert_events(now - timedelta(days=1), now + timedelta(minutes=1))
    finally:
        store.close()
    newest = {event["fingerprint"]: event["status"] for event in events}
    return sum(status == "firing" for status in newest.values())


def test_the_first_minutes_in_a_browser(stack: Running, tmp_path: Path, browser: Any) -> None:
    demo = start_demo(stack, tmp_path / "demo.out")
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        # Live costs: spend above zero and tokens that grow between two looks.
        def spend_and_tokens() -> tuple[float, float] | None:
            look(page, stack.dashboard)
            spend, tokens = money(metric(page, "Spend today")), count(metric(page, "Tokens"))
            return (spend, tokens) if spend > 0 and tokens > 0 else None

        first = every(spend_and_tokens, DEMO_LIMIT_S, "spend and tokens on the overview")
        second = every(
            lambda: (s := spend_and_tokens()) and s[1] > first[1] and s,
            max(30.0, DEMO_LIMIT_S - (time.monotonic() - started)),
            "the tokens to grow between two looks",
        )
        assert time.monotonic() - started <= DEMO_LIMIT_S + 30, "live figures took longer than 3 minutes"
        _screenshot(page, "first-hour-overview")

        # The spike alert reaches both channels; the Alerts page shows what they received.
        def spike_received() -> dict[str, dict[str, Any]] | None:
            spikes = [i for i in _received(stack.store_url) if _is_token_spike(i)]
            by_via = {i["via"]: i for i in spikes}  # the newest of each
            return by_via if {"email", "webhook"} <= set(by_via) else None

        spikes = every(spike_received, 300, "the token-spike alert at the mail catcher and webhook", 5)
        page.goto(f"{stack.dashboard}/alerts", timeout=60_000)
        page.get_by_role("heading", name="Alerts", exact=True).first.wait_for(timeout=60_000)
        _rendered(page)
        heading = "Received by the local mail catcher and webhook receiver"
        page.get_by_text(heading).wait_for(timeout=60_000)
        email, webhook = spikes["email"], spikes["webhook"]
        for item in (email, webhook):
            page.get_by_text(f"{item['via']}: {item['subject']}").first.click()
        shown = page.locator('[data-testid="stMain"]').inner_text()
        payload = webhook["payload"]
        (alert,) = [a for a in payload["alerts"] if a["labels"]["alertname"] == "token_spike"][:1]
        assert alert["fingerprint"] in shown and alert["annotations"]["summary"] in shown, shown[-3000:]
        assert str(email["payload"]).strip().splitlines()[0] in shown, shown[-3000:]
        _screenshot(page, "first-hour-alerts")

        # Notices are not alerts: a scale action by hand (to zero: it costs no CPU) is
        # noticed on both channels, and the overview still counts only what fires.
        demo.send_signal(signal.SIGINT)
        demo.wait(120)
        env = {**os.environ, "INFERPLANE_HOME": str(stack.home)}
        config = str(stack.home.parent / "inferplane.yaml")
        scaled = subprocess.run(
            [*CLI, "scale", "chat", "0", "--for", "10m", "--reason", "test", "--config", config],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        notices = every(
            lambda: [i for i in _received(stack.store_url) if "NOTICE" in str(i.get("subject", "")).upper()],
            120,
            "the scaling notice at the catchers",
            5,
        )
        look(page, stack.dashboard)
        firing = firing_in_store(stack.store_url)
        assert firing >= 1, "the token-spike alert is firing"
        assert int(metric(page, "Firing alerts")) == firing
        print(
            f"\nfirst hour: live spend ${second[0]:.4f} and tokens {first[1]:.0f} -> {second[1]:.0f} "
            f"within {time.monotonic() - started:.0f} s; {len(notices)} notices received; "
            f"spike: {alert['annotations']['summary'][:120]}"
        )
        # The cost chart has minute points: the last hour is in minute buckets, and every
        # line of the cost row (the markers are events, at their own times) steps a minute.
        page.goto(f"{stack.dashboard}/cost_performance", timeout=60_000)
        _rendered(page)
        steps = page.evaluate(
            "() => { const plot = document.querySelector('.stPlotlyChart .js-plotly-plot, "
            '[data-testid="stPlotlyChart"] .js-plotly-plot\');'
            "  if (!plot) return [];"
            "  return plot.data.filter(t => t.mode === 'lines' && (t.yaxis || 'y') === 'y'"
            "    && (t.x || []).length > 1).map(t => {"
            "    const x = t.x.map(v => Date.parse(v)); return x[1] - x[0]; }); }"
        )
        _screenshot(page, "first-hour-cost-performance")
        assert steps and set(steps) == {60_000}, f"the cost chart's steps in ms: {steps}"
    finally:
        page.close()
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()


def _is_token_spike(item: dict[str, Any]) -> bool:
    if item.get("via") == "webhook":
        alerts = item["payload"].get("alerts", []) if isinstance(item.get("payload"), dict) else []
        return any(a["labels"].get("alertname") == "token_spike" and a["status"] == "firing" for a in alerts)
    return str(item.get("subject", "")).startswith("[FIRING") and "token_spike" in str(item.get("subject"))


def _received(store_url: str) -> list[dict[str, Any]]:
    """What the catchers kept in the store, oldest first."""
    from commands.up_catchers import INBOX_KEY
    from inferplane.store import open_store

    store = open_store(store_url)
    try:
        return list((store.load_state(INBOX_KEY) or {}).get("received", []))
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
