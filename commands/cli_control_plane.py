"""``inferplane control-plane``: the one scheduler running collect, autoscale and alerts.

``inferplane up`` runs it as its own child process, so that it can be killed and
restarted without touching the router: its state (autoscaler cooldowns, alert state)
lives in the store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from commands.cli_common import ConfigOption, StoreOption, choose_config, fail, log_config_line
from commands.cli_logging import LogFormatOption, LogLevelOption, start_logging

__all__ = ["CLOCK_OFFSET_ENV", "control_plane"]

log = logging.getLogger("commands.control_plane")
# For tests and demos: run every job's "now" this many seconds from the wall clock, so the
# real stack crosses an hour (or a day) boundary within a minute of starting.
CLOCK_OFFSET_ENV = "INFERPLANE_CLOCK_OFFSET_S"


def control_plane(
    config: ConfigOption = None,
    store: StoreOption = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Written once every job is scheduled (a readiness signal).")
    ] = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run collect, autoscale and alert evaluation on one scheduler until SIGTERM or Ctrl-C."""
    from autoscaler.targets import TargetError
    from commands.control import run_until_stopped
    from commands.control_plane import control_plane_jobs, env_names, offset_clock
    from inferplane.config import ConfigError, load_config
    from inferplane.store import StoreError, open_configured_store

    if ready_file is not None:
        # A restarted container keeps its /tmp: a file from the last run must not say
        # ready before this run's jobs are scheduled.
        ready_file.unlink(missing_ok=True)
    config, which = choose_config(config)
    try:
        settings = load_config(config)
    except ConfigError as error:
        fail(str(error))
    names = env_names(settings)
    start_logging(log_level, log_format, names)
    log_config_line(which)
    clock = None
    offset = os.environ.get(CLOCK_OFFSET_ENV)
    if offset:
        try:
            clock = offset_clock(float(offset))
        except ValueError:
            fail(f"{CLOCK_OFFSET_ENV}={offset!r}: expected a number of seconds")
        log.warning("the control plane's clock runs %s s from the wall clock (%s)", offset, CLOCK_OFFSET_ENV)
    try:
        jobs = control_plane_jobs(settings, open_configured_store(settings, store), clock, source=str(config))
    except (ConfigError, StoreError, TargetError) as error:
        fail(str(error))

    def started() -> None:
        log.info("control plane running: %s", "; ".join(jobs.parts))
        if ready_file is not None:
            ready_file.parent.mkdir(parents=True, exist_ok=True)
            ready_file.write_text("ready\n", encoding="utf-8")

    try:
        run_until_stopped(jobs.adders, jobs.closers, on_start=started)
    finally:
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
    log.info("control plane stopped")
