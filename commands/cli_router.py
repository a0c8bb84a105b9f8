"""``inferplane router``: the router in front of an endpoint's local replicas.

Replicas are ``inferplane serve`` child processes (``start_replica``), labelled
``replica=<port>`` in their own metrics. On SIGTERM or Ctrl-C uvicorn stops accepting,
lets requests in flight finish, then the pool drains and stops every child.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from commands.cli_logging import LogFormatOption, LogLevelOption, start_logging

__all__ = ["router", "split_cores"]


def router(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 to serve other hosts.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the router listens on.")] = 8100,
    model: Annotated[str | None, typer.Option(help="Model the replicas serve (name, path or HF id).")] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name: the metric label and the admin API's.")] = (
        "default"
    ),
    replicas: Annotated[int, typer.Option(min=0, help="Replicas to start with (0: start on demand).")] = 1,
    max_replicas: Annotated[int, typer.Option(min=1, help="Most replicas the admin API may ask for.")] = 8,
    ports: Annotated[str | None, typer.Option(help="Port range for replicas, FIRST-LAST.")] = None,
    hold_timeout: Annotated[float, typer.Option(help="Seconds a request waits for a ready replica.")] = 300,
    max_held: Annotated[
        int, typer.Option(min=0, help="Most requests held while no replica is ready; then 429.")
    ] = 256,
    admin_key_env: Annotated[
        str | None, typer.Option(help="Variable holding the admin API's Bearer key (the key is never shown).")
    ] = None,
    routing: Annotated[
        str,
        typer.Option(
            help="How a replica is picked: fewest-requests, or least-prefill (fewest prompt tokens "
            "awaiting a first byte; for long prompts, best with streamed answers).",
        ),
    ] = "fewest-requests",
    replica_cpu_threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="torch CPU threads of each replica; 0: this machine's cores split over --max-replicas.",
        ),
    ] = 0,
    replica_setting: Annotated[
        list[str] | None,
        typer.Option(
            help="A setting of every replica's service, KEY=VALUE (e.g. max_queue=4); repeatable.",
        ),
    ] = None,
    log_dir: Annotated[Path, typer.Option(help="Where each replica writes its log.")] = Path("router-logs"),
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run the router and its local replicas (OpenAI API on /v1, admin API on /admin/replicas)."""
    import uvicorn

    from inference.model_store import DEFAULT_MODEL
    from inference.replica_pool import process_factory, routing_named
    from inference.router import RouterSettings, create_router_app

    start_logging(log_level, log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request and probe
    if replicas > max_replicas:
        raise typer.BadParameter(
            f"{replicas} is above --max-replicas {max_replicas}", param_hint="--replicas"
        )
    try:
        chosen_routing = routing_named(routing)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--routing") from None
    port_range = _port_range(ports) if ports else None
    extra = _replica_settings(replica_setting or [])
    log_dir.mkdir(parents=True, exist_ok=True)
    settings = RouterSettings(
        model=model or DEFAULT_MODEL,  # the label each replica's own metrics carry
        endpoint=endpoint,
        initial_replicas=replicas,
        max_replicas=max_replicas,
        hold_timeout_s=hold_timeout,
        max_held=max_held,
        admin_key_env=admin_key_env,
        routing=chosen_routing,
    )
    served = {
        "endpoint": endpoint,
        "cpu_threads": replica_cpu_threads or split_cores(max_replicas),
        **({"model": model} if model else {}),
        **extra,
    }
    try:
        app = create_router_app(settings, process_factory(log_dir, served, port_range))
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=600)


def split_cores(replicas: int) -> int:
    """CPU threads for each of ``replicas`` replicas so that together they use this
    machine's cores once (at least one each): replicas that each take every core spin
    against each other and serve a tenth of what they could."""
    return max(1, len(os.sched_getaffinity(0)) // replicas)


def _replica_settings(pairs: list[str]) -> dict[str, str]:
    """``--replica-setting KEY=VALUE`` options, each checked as the config checks them."""
    from inferplane.config import LocalTarget

    settings = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--replica-setting")
        try:
            LocalTarget.replica_setting(key.strip(), value)
        except ValueError as error:
            raise typer.BadParameter(f"{pair!r}: {error}", param_hint="--replica-setting") from None
        settings[key.strip()] = value  # a string, as the replica reads it from INFERPLANE_<KEY>
    return settings


def _port_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last)
    except ValueError:
        raise typer.BadParameter(f"expected FIRST-LAST, got {text!r}", param_hint="--ports") from None
    if not 1 <= low <= high <= 65535:
        raise typer.BadParameter(f"{text!r} is not an ascending range of ports", param_hint="--ports")
    return low, high
