"""``inferplane up``: the whole control plane on this machine; ``inferplane demo``: load.

``up`` checks the config, the store and the ports (a problem exits 2 naming it), starts
the children (``commands.up_plan``) under the supervisor (``commands.up``), prints
the URLs once the routers have a ready replica and the control plane has scheduled its
jobs (and writes ``--ready-file``, JSON with the URLs and the children's pids), and
runs until SIGTERM or Ctrl-C: then every child drains and stops; a second signal kills.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from commands.cli_common import (
    CONFIG_HELP,
    TRACE_FORMATS,
    ConfigOption,
    StoreOption,
    choose_config,
    fail,
    log_config_line,
)
from commands.cli_logging import LogFormatOption, LogLevelOption, start_logging

__all__ = ["catchers", "demo", "up"]

log = logging.getLogger("commands.up")


def up(
    config: ConfigOption = None,
    store: StoreOption = None,
    dashboard: Annotated[bool, typer.Option(help="Start the dashboard.")] = True,
    dashboard_port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8501,
    dashboard_host: Annotated[str, typer.Option(help="Address the dashboard binds.")] = "127.0.0.1",
    prometheus: Annotated[
        bool, typer.Option(help="Start the prometheus on PATH (if any), scraping what the config scrapes.")
    ] = True,
    prometheus_port: Annotated[int, typer.Option(help="Port of that Prometheus.")] = 9090,
    ready_file: Annotated[
        Path | None, typer.Option(help="Written (JSON: URLs, pids) once everything is ready.")
    ] = None,
    stop_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds children get to drain on stop before they are killed.")
    ] = 60.0,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Start the control plane, a router with its replicas, Prometheus (when on PATH) and the
    dashboard; print their URLs once ready; Ctrl-C (or SIGTERM) drains and stops them all."""
    from commands.control_plane import env_names
    from commands.up_plan import UpOptions, busy_ports, inferplane_home, plan_up
    from inferplane.config import ConfigError, load_config
    from inferplane.store import StoreError, open_store, resolve_store_url

    home = inferplane_home()
    config, which = choose_config(config)
    try:
        settings = load_config(config)
        start_logging(log_level, log_format, env_names(settings))
        log_config_line(which)
        store_url = resolve_store_url(store, settings.store.url, settings.store.url_env)
        open_store(store_url).close()  # reachable, and migrated before the children share it
    except (ConfigError, StoreError) as error:
        fail(str(error))
    options = UpOptions(
        config_path=config.resolve(),
        home=home,
        store_url=store_url,
        dashboard=dashboard,
        dashboard_host=dashboard_host,
        dashboard_port=dashboard_port,
        prometheus=prometheus,
        prometheus_port=prometheus_port,
        log_level=log_level,
        log_format=log_format,
    )
    plan = plan_up(settings, options)
    if busy := busy_ports(plan.ports):
        fail("; ".join(busy) + "; stop what uses it or change the config")
    code = _supervise(plan, ready_file, stop_timeout)
    raise typer.Exit(code)


def _supervise(plan: Any, ready_file: Path | None, stop_timeout: float) -> int:
    from commands.up import Supervisor

    signals: list[int] = []
    wake = threading.Event()

    def on_signal(number: int, _frame: object) -> None:
        signals.append(number)
        wake.set()

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(number, on_signal)
    supervisor = Supervisor(plan.children)
    supervisor.start()
    announced: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    while not signals:
        supervisor.tick()
        if announced is None and supervisor.ready():
            announced = _announce(plan.urls)
        if announced is not None and ready_file is not None:
            state = {**announced, "children": _children(supervisor)}
            if state != written:  # rewritten when a child restarts: its new pid
                _write_json(ready_file, state)
                written = state
        wake.wait(0.2)  # a signal wakes it at once
    log.info("stopping (%s): every child drains, then stops", signal.Signals(signals[0]).name)
    clean = supervisor.stop(stop_timeout, kill_now=lambda: len(signals) > 1)
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)
    log.info("stopped%s", "" if clean else " (some children had to be killed)")
    return 0 if clean else 1


def _announce(urls: dict[str, str]) -> dict[str, Any]:
    width = max(len(name) for name in urls)
    lines = [f"  {name:<{width}}  {url}" for name, url in urls.items()]
    typer.echo("inferplane is up:\n" + "\n".join(lines) + "\nCtrl-C stops everything.")
    log.info("ready: %s", ", ".join(f"{name} {url}" for name, url in urls.items()))
    return {"pid": os.getpid(), "urls": dict(urls)}


def _children(supervisor: Any) -> dict[str, dict[str, Any]]:
    return {
        child.spec.name: {"pid": child.pid, "groups": sorted(child.groups), "restarts": child.restarts}
        for child in supervisor.children
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Written aside, then renamed: a reader never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def demo(
    url: Annotated[str, typer.Option(help="The router (or any OpenAI-compatible server).")] = (
        "http://127.0.0.1:8100"
    ),
    trace: Annotated[
        Path | None,
        typer.Option(help=f"Trace file ({TRACE_FORMATS}); default: packaged."),
    ] = None,
    speed: Annotated[float, typer.Option(help="Replay this many times faster than the trace.")] = 1.0,
    keep: Annotated[
        float,
        typer.Option(help="Share of the trace's requests sent (0.25: every 4th); fit it to the hardware."),
    ] = 0.25,
    duration: Annotated[float, typer.Option(help="Seconds of load; the trace loops to fill them.")] = 2400.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Most requests in flight at once.")] = 32,
    max_prompt_tokens: Annotated[int, typer.Option(min=1, help="Prompts are cut to this many tokens.")] = 96,
    max_generated_tokens: Annotated[
        int, typer.Option(min=1, help="max_tokens of each request, at most.")
    ] = 24,
    spike_at: Annotated[
        float | None, typer.Option(help="Second at which prompts grow --spike-factor times (a token spike).")
    ] = 1920.0,
    spike_seconds: Annotated[float, typer.Option(min=1, help="How long the spike lasts.")] = 300.0,
    spike_factor: Annotated[
        float, typer.Option(min=1, help="How much longer prompts are in the spike.")
    ] = 4.0,
    no_spike: Annotated[bool, typer.Option("--no-spike", help="No token spike.")] = False,
    off_hours_at: Annotated[
        float | None,
        typer.Option(help="Second of load at which the demo pauses and takes the endpoint off-hours."),
    ] = 300.0,
    no_off_hours: Annotated[bool, typer.Option("--no-off-hours", help="No off-hours act.")] = False,
    off_hours_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the off-hours act waits for zero replicas.")
    ] = 900.0,
    config: Annotated[
        Path | None, typer.Option(help=CONFIG_HELP + " It names the endpoint behind --url.")
    ] = None,
    store: StoreOption = None,
    progress_every: Annotated[float, typer.Option(min=0.1, help="Seconds between progress lines.")] = 10.0,
) -> None:
    """Drive load from a trace against a running `inferplane up`: scaling, alerts, costs,
    and an off-hours act: the load pauses, the endpoint goes to zero, a request wakes it.

    The token-spike rule needs 30 minutes of history before it can fire, so the default
    spike starts at minute 32 of a 40-minute run of load; scaling out and in shows in
    minutes; the off-hours act starts after 5 minutes of load and adds a few more (the
    autoscaler's scale-in window and stabilization, then a replica's start)."""
    from commands.demo import DemoShape, LoadDriver, Spike, demo_requests
    from inference.trace import load_trace

    spike = None if no_spike or spike_at is None else Spike(spike_at, spike_seconds, spike_factor)
    shape = DemoShape(speed, duration, keep, max_prompt_tokens, max_generated_tokens, spike)
    try:
        requests = demo_requests(load_trace(trace), shape)
    except ValueError as error:
        fail(str(error))
    _check_reachable(url)
    spiked = (
        f", token spike x{spike.factor:g} from {spike.at_s:.0f} s for {spike.seconds:.0f} s" if spike else ""
    )
    typer.echo(
        f"demo: {len(requests)} requests over {duration:.0f} s to {url} "
        f"(trace x{speed:g}, {keep:.0%} of its requests{spiked})"
    )
    acting = not no_off_hours and off_hours_at is not None and off_hours_at < duration
    stage = _off_hours_stage(config, store, url) if acting else None
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    driver = LoadDriver(url, concurrency=concurrency)
    try:
        done = _drive(driver, requests, stage, off_hours_at, off_hours_timeout, progress_every, stop)
    finally:
        driver.close()
        if stage is not None:
            stage.close()
    _summary(driver.stats, done)
    raise typer.Exit(0 if driver.stats.ok else 1)


def _off_hours_stage(config: Path | None, store: str | None, url: str) -> Any:
    """The off-hours act's stage on the endpoint behind ``url``, or None (said) without one."""
    from autoscaler.targets import TargetError
    from commands.cli_common import choose_config
    from commands.demo_off_hours import EngineStage, endpoint_behind
    from inferplane.config import ConfigError, load_config
    from inferplane.store import StoreError

    path, line = choose_config(config)
    typer.echo(line)
    try:
        name = endpoint_behind(load_config(path), url)
        if name is None:
            typer.echo(f"demo: no autoscaled endpoint of {path} has its router at {url}; no off-hours act")
            return None
        return EngineStage.open(path, store, name)
    except (ConfigError, StoreError, TargetError) as error:
        typer.echo(f"demo: no off-hours act ({error})")
        return None


def _drive(
    driver: Any,
    requests: list[Any],
    stage: Any,
    off_hours_at: float | None,
    zero_timeout_s: float,
    every_s: float,
    stop: threading.Event,
) -> bool:
    """The load, with the off-hours act between the requests before ``off_hours_at`` and
    those after (which then start from the act's end)."""
    from commands.demo import run_with_progress
    from commands.demo_off_hours import show_off_hours
    from inference.trace import TraceRequest

    began = time.monotonic()

    def report(_t: float, stats: Any) -> None:
        typer.echo(f"[{time.monotonic() - began:6.0f}s] {stats.line()}")

    if stage is None or off_hours_at is None:
        return run_with_progress(driver, requests, every_s, report, stop)
    before = [r for r in requests if r.offset_s < off_hours_at]
    after = [TraceRequest(r.offset_s - off_hours_at, r.prompt_tokens, r.generated_tokens)
             for r in requests if r.offset_s >= off_hours_at]  # fmt: skip
    if not run_with_progress(driver, before, every_s, report, stop) or stop.is_set():
        return False

    shown = show_off_hours(stage, lambda: driver.ask(16, 8), typer.echo, stop, zero_timeout_s)
    typer.echo(shown.line())
    return run_with_progress(driver, after, every_s, report, stop) if after and not stop.is_set() else True


def _check_reachable(url: str) -> None:
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/v1/models", timeout=10)
    except httpx.HTTPError as error:
        fail(f"nothing answers at {url} ({error}); start it with: inferplane up")


def _summary(stats: Any, done: bool) -> None:
    import statistics

    latencies = sorted(stats.latencies_s)
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("nan")
    typer.echo(
        f"summary: {stats.line()}; latency p50 {p50:.2f} s, p95 {p95:.2f} s"
        f"{'' if done else '; stopped before every answer came back'}"
    )


def catchers(
    smtp_port: Annotated[int | None, typer.Option(help="Port of the mail catcher; none without it.")] = None,
    webhook_port: Annotated[
        int | None, typer.Option(help="Port of the webhook receiver; none without it.")
    ] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (default: as up hands it down).")] = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run the local mail catcher and webhook receiver (``inferplane up`` starts them when
    the config sends alerts to them); what they receive is kept in the store."""
    from commands.up_catchers import CATCHER_HOST, WEBHOOK_PATH, Catchers
    from inferplane.store import StoreError, open_configured_store

    start_logging(log_level, log_format)
    if smtp_port is None and webhook_port is None:
        fail("give --smtp-port, --webhook-port or both")
    try:
        opened = open_configured_store(None, store)
    except StoreError as error:
        fail(str(error))
    running = Catchers(opened, smtp_port, webhook_port)
    try:
        running.start()
    except OSError as error:
        opened.close()
        fail(f"cannot listen: {error}")
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda _n, _f: stop.set())
    if smtp_port:
        log.info("mail catcher: smtp://%s:%d", CATCHER_HOST, smtp_port)
    if webhook_port:
        log.info("webhook receiver: http://%s:%d%s", CATCHER_HOST, webhook_port, WEBHOOK_PATH)
    stop.wait()
    running.stop()
    opened.close()
