"""``inferplane replay``: replay a request trace against simulated endpoints, one row per policy.

The endpoint comes from an inferplane config (its price, TTFT target, replica bounds and
autoscaling policy); what one replica can do comes from a capacity file, by default the
config's name with ``.capacity.yaml`` for ``.yaml`` (see ``examples/replay-a100.*``).
``--save NAME`` keeps the rows (what ``--json`` prints) in the store under the state key
``replay:NAME``, where the dashboard's autoscaler page charts them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from autoscaler.replay import Capacity, capacity_from_mapping, format_table, replay_rows
from autoscaler.replay.replica import Requests
from autoscaler.replay.report import ROWS, ReplayRow, Slo, infeasible
from autoscaler.replay.workload import as_requests, scale_load
from commands.cli_common import TRACE_FORMATS, check_writable, fail
from inference.replica_pool import Routing, routing_named
from inference.trace import load_trace, scale_trace
from inferplane.config import ConfigError, InferplaneConfig, load_config
from inferplane.config.endpoints import Endpoint

__all__ = ["PROGRESS_AFTER_S", "REPLAY_START", "progress_for", "replay", "replay_inputs"]

_SAVE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
REPLAY_START = "2026-11-23T10:00:00+00:00"
ROUTING_HELP = (
    "how the simulated router picks a replica, for every row: fewest-requests (the router's default) "
    "or least-prefill (the fewest prompt tokens still to prefill: the router's --routing least-prefill)"
)
PROGRESS_AFTER_S = 6 * 3600.0  # a Monday morning, UTC: inside common uptime windows


def replay(
    config: Annotated[Path, typer.Option("--config", help="inferplane.yaml with the endpoint")],
    trace: Annotated[Path | None, typer.Option(help=f"trace file: {TRACE_FORMATS}")] = None,
    capacity: Annotated[
        Path | None, typer.Option(help="capacity file (default: CONFIG.capacity.yaml)")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="endpoint name (default: the first priced by GPU hour)")
    ] = None,
    time_scale: Annotated[float, typer.Option(help="replay this many times faster")] = 1.0,
    load_scale: Annotated[float, typer.Option(help="this many times the requests, same shape")] = 1.0,
    slo_goal: Annotated[float, typer.Option(help="attainment static_best must reach")] = 0.99,
    ttft_per_1k_prompt: Annotated[
        float, typer.Option(help="SLO allowance: seconds of TTFT added per 1,000 prompt tokens")
    ] = 0.0,
    row: Annotated[
        list[str] | None, typer.Option("--row", help=f"run only these rows (repeatable): {', '.join(ROWS)}")
    ] = None,
    start: Annotated[
        str, typer.Option(help="wall-clock time of the trace's start (schedules)")
    ] = REPLAY_START,
    tick: Annotated[float, typer.Option(help="simulation tick, seconds")] = 0.1,
    routing: Annotated[str, typer.Option(help=ROUTING_HELP)] = "fewest-requests",
    workers: Annotated[int, typer.Option(help="processes the rows run in (default: up to 2 cores)")] = min(
        2, os.cpu_count() or 1
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    save: Annotated[
        str | None, typer.Option(help="keep the rows in the store as replay:NAME (the dashboard charts them)")
    ] = None,
    timeline: Annotated[
        Path | None,
        typer.Option(
            help="also write each row's timeline here as CSV: per --timeline-step of arrivals, the "
            "requests, how many missed the SLO, the replicas, and the configured policy's changes and why"
        ),
    ] = None,
    timeline_step: Annotated[float, typer.Option(help="the timeline's bucket, seconds")] = 60.0,
    store: Annotated[str | None, typer.Option(help="store URL for --save (default: the config's)")] = None,
) -> None:
    """Replay a request trace against the endpoint's policy, the peers and the bounds."""
    if save is not None and not _SAVE_NAME.fullmatch(save):
        fail(f"--save {save!r}: use 1-100 letters, digits, '.', '_' or '-'")
    try:
        cfg, chosen, cap = replay_inputs(config, capacity, endpoint)
        requests = as_requests(scale_load(scale_trace(load_trace(trace), time_scale=time_scale), load_scale))
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as error:
        fail(str(error))
    try:
        begin = datetime.fromisoformat(start)
    except ValueError:
        fail(f"--start {start!r}: expected an ISO 8601 time such as 2026-01-05T09:00:00Z")
    if workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if not (tick > 0 and math.isfinite(tick)):
        fail(f"--tick must be a positive number of seconds, got {tick}")
    if not (0 < slo_goal <= 1):
        fail(f"--slo-goal must be a share of requests above 0 and at most 1, got {slo_goal}")
    if not (timeline_step > 0 and math.isfinite(timeline_step)):
        fail(f"--timeline-step must be a positive number of seconds, got {timeline_step}")
    chosen_routing = routing_option(routing)
    if not (ttft_per_1k_prompt >= 0 and math.isfinite(ttft_per_1k_prompt)):
        fail(f"--ttft-per-1k-prompt must be a finite number >= 0, got {ttft_per_1k_prompt}")
    check_writable(timeline, "--timeline")
    clock = time.perf_counter()
    try:
        rows = replay_rows(
            requests,
            cap,
            chosen,
            start=begin,
            slo_goal=slo_goal,
            tick_s=tick,
            per_1k_prompt_s=ttft_per_1k_prompt,
            only=row,
            workers=workers,
            progress=progress_for(requests),
            routing=chosen_routing,
            timeline_step_s=timeline_step if timeline is not None else None,
        )
    except ValueError as error:
        fail(str(error))
    excluded = sum(infeasible(requests, cap, Slo(chosen.ttft_target_seconds or 0.0, ttft_per_1k_prompt)))
    runtime = time.perf_counter() - clock
    summary: dict[str, Any] = {
        "endpoint": chosen.name,
        "trace": str(trace or "packaged azure_llm_2023_code.csv"),
        "requests": len(requests.arrival_s),
        "time_scale": time_scale,
        "load_scale": load_scale,
        "ttft_target_seconds": chosen.ttft_target_seconds,
        "ttft_per_1k_prompt_seconds": ttft_per_1k_prompt,
        "excluded_requests": excluded,
        "routing": chosen_routing,
        "runtime_seconds": round(runtime, 2),
        "rows": [row.as_json() for row in rows],
    }
    if save is not None:
        _save(save, summary, store, cfg)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(format_table(rows))
        typer.echo(
            f"{len(requests.arrival_s)} requests ({excluded} left out of every row: no replica could "
            f"serve them in time even alone), endpoint {chosen.name}, replayed in {runtime:.1f} s"
            + (
                f", routed by {chosen_routing} (the router's default is fewest-requests)"
                if chosen_routing != "fewest-requests"
                else ""
            )
        )
    if timeline is not None:
        _write_timeline(timeline, rows, begin)


def routing_option(value: str) -> Routing:
    """``--routing``'s value, or exit 2 naming the choices."""
    try:
        return routing_named(value)
    except ValueError as error:
        fail(f"--{error}")  # "--routing must be one of ..."


def progress_for(requests: Requests) -> Callable[[str], None] | None:
    """Progress lines on stderr for a trace long enough to take a while (over
    ``PROGRESS_AFTER_S`` of traffic: about a minute of replay on 2 cores); none else."""
    span = requests.arrival_s[-1] - requests.arrival_s[0] if requests.arrival_s else 0.0
    if span <= PROGRESS_AFTER_S:
        return None
    return lambda line: typer.echo(line, err=True)


def replay_inputs(
    config: Path, capacity: Path | None, endpoint: str | None
) -> tuple[InferplaneConfig, Endpoint, Capacity]:
    """The config, the endpoint to replay and its replica capacity (``CONFIG.capacity.yaml``
    beside the config unless ``capacity`` names one). Raises ConfigError, OSError,
    ValueError or yaml.YAMLError on bad input."""
    cfg = load_config(config)
    chosen = _endpoint(cfg.endpoints, endpoint)
    cap_path = capacity or config.with_name(config.name.removesuffix(".yaml") + ".capacity.yaml")
    try:
        return cfg, chosen, capacity_from_mapping(yaml.safe_load(cap_path.read_text(encoding="utf-8")))
    except OSError as error:
        raise ValueError(f"capacity file {cap_path}: {error.strerror or error}") from error
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"capacity file {cap_path}: {error}") from error


def _save(name: str, summary: dict[str, Any], store: str | None, cfg: InferplaneConfig) -> None:
    """Keep the comparison under ``replay:NAME`` (replacing one of the same name)."""
    from inferplane.store import StoreError, open_configured_store

    try:
        opened = open_configured_store(cfg, store)
        try:
            opened.save_state(f"replay:{name}", summary, datetime.now(UTC))
        finally:
            opened.close()
    except (StoreError, ConfigError) as error:
        fail(str(error))


TIMELINE_COLUMNS = (
    "policy",
    "start_s",
    "start",
    "requests",
    "missed",
    "attainment",
    "replicas_mean",
    "ready_min",
    "ready_max",
    "reason",
)


def _write_timeline(path: Path, rows: list[ReplayRow], begin: datetime) -> None:
    """Every row's buckets, one CSV line each (``start``: the bucket's wall-clock time)."""
    try:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(TIMELINE_COLUMNS)
            for row in rows:
                for b in row.timeline:
                    share = "" if b.requests == 0 else f"{(b.requests - b.missed) / b.requests:.4f}"
                    writer.writerow(
                        [
                            row.policy,
                            f"{b.start_s:g}",
                            (begin + timedelta(seconds=b.start_s)).isoformat(),
                            b.requests,
                            b.missed,
                            share,
                            "" if b.replicas is None else f"{b.replicas:g}",
                            "" if b.ready_min is None else b.ready_min,
                            "" if b.ready_max is None else b.ready_max,
                            b.reason,
                        ]
                    )
    except OSError as error:
        fail(f"--timeline {path}: {error.strerror or error}")
    buckets = max((len(row.timeline) for row in rows), default=0)
    typer.echo(f"timeline: {buckets} buckets per row written to {path}", err=True)


def _endpoint(endpoints: list[Endpoint], name: str | None) -> Endpoint:
    if name is not None:
        for candidate in endpoints:
            if candidate.name == name:
                return candidate
        raise ValueError(f"no endpoint named {name!r}; the config has {[e.name for e in endpoints]}")
    for candidate in endpoints:
        if candidate.autoscaling is not None and candidate.ttft_target_seconds is not None:
            return candidate
    raise ValueError(
        "no endpoint with autoscaling and ttft_target_seconds to replay; name one with --endpoint"
    )
