"""``inferplane alerts ...``: evaluate, list, test a channel, silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from commands.cli_common import (
    ConfigOption,
    StoreOption,
    close_room,
    fail,
    log_config,
    open_config_and_store,
    parse_duration,
    resolve_config,
)
from commands.cli_logging import LogFormatOption, LogLevelOption, start_logging

__all__ = ["alerts_app", "open_engine"]

alerts_app = typer.Typer(
    help="Evaluate alert rules, list alerts, test channels and silence alerts.", no_args_is_help=True
)


def open_engine(config: Path | None, store: str | None) -> tuple[Any, Any]:
    """The alert engine for ``config`` (see ``resolve_config``) and the store opened for it
    (the engine does not close what it was handed: the command closes both); a bad file,
    secret or store fails the command."""
    return _open_engine(resolve_config(config), store)


def _open_engine(config: Path, store: str | None) -> tuple[Any, Any]:
    from alerts.build import build_alert_engine
    from inferplane.config import ConfigError

    settings, opened = open_config_and_store(config, store)
    try:
        return build_alert_engine(settings, opened), opened
    except ConfigError as error:
        opened.close()
        fail(str(error))


def _store(config: Path | None, store: str | None) -> Any:
    """The store alone (listing and silencing need no channel secrets)."""
    return open_config_and_store(resolve_config(config), store)[1]


@alerts_app.command("evaluate")
def evaluate(
    config: ConfigOption = None,
    store: StoreOption = None,
    once: Annotated[bool, typer.Option("--once", help="Evaluate once, print the report, exit.")] = False,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Evaluate the alert rules against the store and notify the channels."""
    from alerts.jobs import add_alert_jobs
    from commands.control import run_until_stopped
    from inferplane.store import StoreError

    start_logging(log_level, log_format)
    engine, opened = _open_engine(log_config(config), store)
    if not once:
        typer.echo(f"evaluating alerts every {engine.evaluate_every_s:g} s; Ctrl-C stops")
        jobs = [lambda scheduler: add_alert_jobs(scheduler, engine)]
        run_until_stopped(jobs, [lambda: close_room(engine, opened)])
        return
    try:
        report = engine.evaluate()
    except StoreError as error:
        fail(str(error))
    finally:
        close_room(engine, opened)
    typer.echo("\n".join(report.lines()))
    if any(not d.ok for d in report.deliveries):
        raise typer.Exit(code=1)


@alerts_app.command("list")
def list_alerts(
    config: ConfigOption = None,
    store: StoreOption = None,
    hours: Annotated[float, typer.Option(help="How far back to list transitions and deliveries.")] = 24,
) -> None:
    """Firing alerts, recent transitions with their deliveries, and active silences."""
    from alerts.engine import STATE_KEY
    from alerts.state import from_records

    opened = _store(config, store)
    now = datetime.now(UTC)
    try:
        saved = opened.load_state(STATE_KEY)
        firing = sorted(from_records(saved).firing.values(), key=lambda a: a.starts_at) if saved else []
        events = opened.read_alert_events(now - timedelta(hours=hours), now)
        deliveries = opened.read_deliveries(now - timedelta(hours=hours), now)
        silences = opened.read_silences(now)
    finally:
        opened.close()
    typer.echo(f"firing now: {len(firing)}")
    for alert in firing:
        finding = alert.finding
        typer.echo(
            f"  [{finding.severity}] {finding.rule}: {finding.summary} (since {_when(alert.starts_at)})"
        )
    typer.echo(f"transitions in the last {hours:g} h: {len(events)}")
    for event in events:
        sent = [
            d for d in deliveries if d["fingerprint"] == event["fingerprint"] and d["time"] >= event["time"]
        ]
        ok = sum(1 for d in sent if d["ok"])
        typer.echo(
            f"  {_when(event['time'])} {event['status']:8} {event['rule']}: {event['summary']} "
            f"[{ok} delivered, {len(sent) - ok} failed attempts]"
        )
    typer.echo(f"silences: {len(silences)}")
    for row in silences:
        matchers = ", ".join(f"{k}={v}" for k, v in row["matchers"].items())
        typer.echo(f"  #{row['id']} {matchers} until {_when(row['ends_at'])}: {row['comment']}")


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@alerts_app.command("test")
def test_channel(
    channel: Annotated[
        str | None, typer.Argument(help="The channel's name in alerts.channels; default: every channel.")
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Send a test notification through one channel, or through every channel (each attempt
    is recorded in the store); exits 1 when one failed."""
    engine, opened = open_engine(config, store)
    try:
        names = [channel] if channel else [c.name for c in engine.channels]
        if not names:
            fail("no channel in alerts.channels: nothing to test")
        deliveries = [engine.send_test(name) for name in names]
    except KeyError as error:
        fail(str(error.args[0]))
    finally:
        close_room(engine, opened)
    for delivery in deliveries:
        typer.echo(delivery.line().strip())
    if not all(delivery.ok for delivery in deliveries):
        raise typer.Exit(code=1)


@alerts_app.command("silence")
def silence(
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h, 1d.")],
    comment: Annotated[str, typer.Option(help="Why (shown in alerts list).")],
    endpoint: Annotated[str | None, typer.Option(help="Only alerts of this endpoint.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule (token_spike, ...).")] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Mute matching alerts for a while; they are notified again once it expires."""
    try:
        length = parse_duration(duration)
    except ValueError as error:
        fail(f"--for: {error}")
    matchers = {k: v for k, v in {"endpoint": endpoint, "rule": rule}.items() if v}
    if not matchers:
        fail("name what to silence: --endpoint, --rule or both")
    settings, opened = open_config_and_store(resolve_config(config), store)
    names = [e.name for e in settings.endpoints]
    if endpoint is not None and endpoint not in names:
        opened.close()  # a silence for it would match nothing: alerts judge configured endpoints
        fail(
            f"--endpoint {endpoint!r}: no such endpoint in the config; "
            f"endpoints: {', '.join(names) or 'none'}"
        )
    now = datetime.now(UTC)
    try:
        silence_id = opened.add_silence(matchers, now, now + length, comment)
    finally:
        opened.close()
    typer.echo(f"silence #{silence_id} until {now + length:%Y-%m-%d %H:%M} UTC")


@alerts_app.command("unsilence")
def unsilence(
    silence_id: Annotated[int, typer.Argument(help="The silence's number (see alerts list).")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """End a silence now."""
    opened = _store(config, store)
    try:
        ended = opened.expire_silence(silence_id, datetime.now(UTC))
    finally:
        opened.close()
    if not ended:
        fail(f"no active silence #{silence_id}")
    typer.echo(f"silence #{silence_id} ended")
