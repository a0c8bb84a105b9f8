"""``inferplane autoscaler run|status|pause|resume|off-hours`` and ``inferplane scale ENDPOINT N``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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

__all__ = ["autoscaler_app", "scale"]

autoscaler_app = typer.Typer(
    help="Run the autoscaler, show its state, pause and resume endpoints.", no_args_is_help=True
)


def _engine(config: Path, store: str | None, dry_run: bool = False) -> tuple[Any, Any]:
    """The autoscaler engine for an already resolved ``config``, and the store opened for
    it (the engine does not close what it was handed: the command closes both)."""
    from autoscaler.build import build_autoscaler
    from autoscaler.targets import TargetError
    from inferplane.config import ConfigError

    settings, opened = open_config_and_store(config, store)
    try:
        return build_autoscaler(settings, opened, dry_run=dry_run, source=str(config)), opened
    except (ConfigError, TargetError) as error:
        opened.close()
        fail(str(error))


def _endpoint_engine(endpoint: str, config: Path | None, store: str | None) -> tuple[Any, Any]:
    """The engine and its store for ``config``, once ENDPOINT is known to be one it autoscales."""
    engine, opened = _engine(resolve_config(config), store)
    names = [e.name for e in engine.endpoints]
    if endpoint not in names:
        close_room(engine, opened)
        known = endpoint in [e.name for e in engine.config.endpoints]
        why = "is not autoscaled" if known else "is not in the config"
        fail(f"endpoint {endpoint!r} {why}; autoscaled endpoints: {', '.join(names) or 'none'}")
    return engine, opened


@autoscaler_app.command("run")
def run(
    config: ConfigOption = None,
    store: StoreOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and record, never scale.")] = False,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Poll every autoscaled endpoint on its interval until SIGTERM or Ctrl-C."""
    from autoscaler.jobs import add_autoscale_jobs
    from commands.control import run_until_stopped

    start_logging(log_level, log_format)
    config = log_config(config)
    engine, opened = _engine(config, store, dry_run)
    if not engine.endpoints:
        close_room(engine, opened)
        fail(f"{config}: no endpoint has an autoscaling section; nothing to scale")
    names = ", ".join(e.name for e in engine.endpoints)
    typer.echo(f"autoscaler: polling {names}{' (dry run)' if dry_run else ''}", err=True)
    jobs = [lambda scheduler: add_autoscale_jobs(scheduler, engine)]
    run_until_stopped(jobs, closers=[lambda: close_room(engine, opened)])


@autoscaler_app.command("status")
def status(
    config: ConfigOption = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per endpoint.")] = False,
) -> None:
    """Replicas (set and ready), pause, override and the last decision of each endpoint."""
    from autoscaler.status import endpoint_status

    engine, opened = _engine(resolve_config(config), store)
    try:
        rows = [endpoint_status(engine, e.name, datetime.now(UTC)) for e in engine.endpoints]
    finally:
        close_room(engine, opened)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        typer.echo(_status_line(row))


def _status_line(row: dict[str, Any]) -> str:
    replicas = row["error"] or f"{row['replicas']} set, {row['ready_replicas']} ready"
    marks = ("paused" if row["paused"] else "", row["override"] or "", row["off_hours"] or "")
    flags = [f for f in marks if f]
    last = row["last_decision"]
    told = f"\n    last decision {last['time']:%Y-%m-%d %H:%M:%S}: {last['reason']}" if last else ""
    return f"{row['endpoint']}: {replicas}{' [' + '; '.join(flags) + ']' if flags else ''}{told}"


@autoscaler_app.command("pause")
def pause(endpoint: str, config: ConfigOption = None, store: StoreOption = None) -> None:
    """Keep deciding and recording, stop scaling ENDPOINT."""
    _set_paused(endpoint, True, config, store)


@autoscaler_app.command("resume")
def resume(endpoint: str, config: ConfigOption = None, store: StoreOption = None) -> None:
    """Scale ENDPOINT again (also ends a manual override)."""
    _set_paused(endpoint, False, config, store)


def _set_paused(endpoint: str, paused: bool, config: Path | None, store: str | None) -> None:
    engine, opened = _endpoint_engine(endpoint, config, store)
    try:
        engine.set_paused(endpoint, paused, datetime.now(UTC))
    finally:
        close_room(engine, opened)
    typer.echo(f"{endpoint}: {'paused' if paused else 'resumed'}")


def scale(
    endpoint: Annotated[str, typer.Argument(help="The endpoint to scale.")],
    replicas: Annotated[int, typer.Argument(help="Replica count to pin.", min=0)],
    hold_for: Annotated[str, typer.Option("--for", help="How long the override holds: 30m, 2h, 1d.")] = "1h",
    reason: Annotated[str, typer.Option(help="Why (recorded with every decision).")] = "",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Pin ENDPOINT at N replicas now, until the override expires (or `autoscaler resume`)."""
    from autoscaler.targets import TargetError

    try:
        duration = parse_duration(hold_for)
    except ValueError as error:
        fail(str(error))
    engine, opened = _endpoint_engine(endpoint, config, store)
    now = datetime.now(UTC)
    try:
        result = engine.override(endpoint, replicas, now + duration, reason, now)
    except (ValueError, TargetError) as error:
        fail(str(error))
    finally:
        close_room(engine, opened)
    typer.echo(result.reason)
    if not result.applied:
        fail(f"{endpoint}: the override is recorded but was not applied: {result.error or result.reason}")


@autoscaler_app.command("off-hours")
def off_hours(
    endpoint: str,
    hold_for: Annotated[
        str, typer.Option("--for", help="How long ENDPOINT is off-hours from now: 30m, 2h.")
    ] = "1h",
    end: Annotated[bool, typer.Option("--end", help="End the off-hours set earlier, now.")] = False,
    reason: Annotated[str, typer.Option(help="Why (shown in every decision it shapes).")] = "",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Take ENDPOINT off-hours now, as a downtime window would: its floor drops to the
    off-hours floor (0 unless off_hours_replicas says more), the idle endpoint scales to
    it, and a request that arrives wakes it (the router holds it while a replica starts)."""
    from inferplane.schedule import OneOffDowntime

    try:
        duration = parse_duration(hold_for)
    except ValueError as error:
        fail(str(error))
    engine, opened = _endpoint_engine(endpoint, config, store)
    now = datetime.now(UTC)
    try:
        if end:
            current = engine.downtime(endpoint)
            if current is None or not current.is_open(now):
                typer.echo(f"{endpoint}: not off-hours by hand; nothing to end")
                return
            downtime = OneOffDowntime(current.start, now, current.reason)
        else:
            downtime = OneOffDowntime(now, now + duration, reason)
        engine.set_downtime(endpoint, downtime, now)
    finally:
        close_room(engine, opened)
    typer.echo(f"{endpoint}: {downtime.text()}{' (ended)' if end else ''}")
