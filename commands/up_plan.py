"""What ``inferplane up`` starts for a configuration: one router per local endpoint, the
control plane, the local mail catcher and webhook receiver when the config's channels
send to them (``commands.up_catchers``), Prometheus (when one is on PATH;
``commands.up_prometheus``), the dashboard; with their commands, logs, readiness
checks and URLs.

Pure apart from reading files and probing ports: ``plan_up(config, options)`` returns a
``Plan``; the supervisor (``commands.up``) runs it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from commands.up import ChildSpec
from commands.up_catchers import CATCHER_HOST, WEBHOOK_PATH, catchers_used
from inferplane.config import Endpoint, InferplaneConfig, LocalTarget
from inferplane.store import STORE_URL_ENV

__all__ = ["Plan", "UpOptions", "busy_ports", "inferplane_home", "plan_up", "safe_url"]

log = logging.getLogger("commands.up")

_CLI = (sys.executable, "-m", "commands.cli")
ADMIN_KEY_ENV = "INFERPLANE_ROUTER_ADMIN_KEY"  # the variable the local target sends


@dataclass(frozen=True)
class UpOptions:
    """What the ``up`` command line says, besides the config."""

    config_path: Path
    home: Path
    store_url: str
    """The store up opened; every child opens it too (through ``$INFERPLANE_STORE_URL``)."""
    dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8501
    prometheus: bool = True
    """Start the prometheus found on PATH (if any), scraping what the config scrapes."""
    prometheus_port: int = 9090
    log_level: str = "info"
    log_format: str = "text"


@dataclass
class Plan:
    """The children to run and the URLs to announce once they are ready."""

    children: list[ChildSpec] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    ports: dict[int, str] = field(default_factory=dict)
    """Every port a child will listen on, and what for (checked free before starting)."""


def inferplane_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$INFERPLANE_HOME``, else ``~/.local/share/inferplane`` (the store's folder too)."""
    env = os.environ if environ is None else environ
    if env.get("INFERPLANE_HOME"):
        return Path(env["INFERPLANE_HOME"]).expanduser()
    return (Path(env["HOME"]) if env.get("HOME") else Path.home()) / ".local" / "share" / "inferplane"


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for printing)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def busy_ports(ports: Mapping[int, str], host: str = "127.0.0.1") -> list[str]:
    """One line for each port of ``ports`` that something already listens on."""
    busy = []
    for port, what in sorted(ports.items()):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                sock.bind((host, port))
            except OSError as error:
                busy.append(f"port {port} ({what}) is in use: {error.strerror}")
    return busy


def plan_up(config: InferplaneConfig, options: UpOptions, environ: Mapping[str, str] | None = None) -> Plan:
    """The children for ``config``: routers, control plane, dashboard (in that order)."""
    env = dict(os.environ if environ is None else environ)
    env["INFERPLANE_LOG_LEVEL"] = options.log_level
    env["INFERPLANE_LOG_FORMAT"] = options.log_format
    # Every child opens the store up opened, through the environment: a URL with a
    # password stays out of argv, where ps would show it.
    env[STORE_URL_ENV] = options.store_url
    plan = Plan()
    logs = options.home / "logs"
    for index, endpoint in enumerate(config.endpoints):
        if isinstance(endpoint.target, LocalTarget):
            _add_router(plan, index, endpoint, logs, options, env)
    ready_file = options.home / "run" / "control-plane.ready"
    argv = [*_CLI, "control-plane", "--config", str(options.config_path), "--ready-file", str(ready_file)]
    plan.children.append(
        ChildSpec(
            "control-plane",
            argv,
            logs / "control-plane.log",
            env=env,
            ready=ready_file.exists,
            before_start=lambda: ready_file.unlink(missing_ok=True),
        )
    )
    plan.urls["store"] = safe_url(options.store_url)
    if used := catchers_used(config):
        _add_catchers(plan, used, env, logs)
    if options.prometheus:
        _add_prometheus(plan, config, options, env, logs)
    if options.dashboard:
        _add_dashboard(plan, options, env, logs)
    return plan


def _add_router(
    plan: Plan,
    index: int,
    endpoint: Endpoint,
    logs: Path,
    options: UpOptions,
    env: dict[str, str],
) -> None:
    name, target = endpoint.name, endpoint.target
    assert isinstance(target, LocalTarget)
    min_replicas, max_replicas = endpoint.min_replicas, endpoint.max_replicas
    url = urlsplit(target.router_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    argv = [
        *_CLI, "router", "--host", host, "--port", str(port), "--endpoint", name,
        "--model", target.model, "--replicas", str(min_replicas), "--max-replicas", str(max_replicas),
        "--log-dir", str(logs / name), "--log-level", options.log_level,
    ]  # fmt: skip
    if target.ports is not None:
        argv += ["--ports", f"{target.ports[0]}-{target.ports[1]}"]
        for replica_port in range(target.ports[0], target.ports[1] + 1):
            plan.ports[replica_port] = f"a replica port of endpoint {name}"
    for key, value in target.replica_settings.items():
        argv += ["--replica-setting", f"{key}={_setting_text(value)}"]
    if env.get(ADMIN_KEY_ENV):
        argv += ["--admin-key-env", ADMIN_KEY_ENV]
    base = target.router_url.rstrip("/")
    plan.ports[port] = f"endpoints[{index}].target.router_url of {name}"
    plan.children.append(
        ChildSpec(f"router-{name}", argv, logs / f"router-{name}.log", env=env,
                  ready=lambda: _router_ready(base, min(1, min_replicas)))
    )  # fmt: skip
    plan.urls[f"api {name}"] = f"{base}/v1"
    plan.urls[f"metrics {name}"] = f"{base}/metrics"


def _setting_text(value: object) -> str:
    # As the replica reads it back from INFERPLANE_<KEY>: YAML's true is "true", not "True".
    return str(value).lower() if isinstance(value, bool) else str(value)


def _add_prometheus(
    plan: Plan, config: InferplaneConfig, options: UpOptions, env: dict[str, str], logs: Path
) -> None:
    from commands.up_prometheus import prometheus_child

    # Prometheus is an extra: a port in use (a Prometheus of your own, say) skips it
    # rather than refusing to start.
    if busy := busy_ports({options.prometheus_port: "--prometheus-port"}):
        log.warning("not starting Prometheus: %s", busy[0])
        return
    child = prometheus_child(config, options.home / "run", logs, options.prometheus_port, env)
    if child is not None:
        plan.children.append(child)
        plan.ports[options.prometheus_port] = "--prometheus-port"
        plan.urls["prometheus"] = f"http://127.0.0.1:{options.prometheus_port}"


def _add_catchers(plan: Plan, used: dict[str, int], env: dict[str, str], logs: Path) -> None:
    """The local mail catcher and webhook receiver the config's channels send to."""
    argv = [*_CLI, "catchers"]
    if "smtp" in used:
        argv += ["--smtp-port", str(used["smtp"])]
        plan.ports[used["smtp"]] = "the mail catcher (alerts.channels)"
        plan.urls["mail catcher"] = f"smtp://{CATCHER_HOST}:{used['smtp']}"
    if "webhook" in used:
        argv += ["--webhook-port", str(used["webhook"])]
        plan.ports[used["webhook"]] = "the webhook receiver (alerts.channels)"
        plan.urls["webhook"] = f"http://{CATCHER_HOST}:{used['webhook']}{WEBHOOK_PATH}"
    ports = list(used.values())
    plan.children.append(
        ChildSpec("catchers", argv, logs / "catchers.log", env=env, ready=lambda: _listening(ports))
    )


def _listening(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((CATCHER_HOST, port)) != 0:
                return False
    return True


def _router_ready(base: str, replicas: int) -> bool:
    answer = httpx.get(base + "/ready", timeout=2)
    return answer.status_code == 200 and int(answer.json().get("ready_replicas", 0)) >= replicas


def _add_dashboard(plan: Plan, options: UpOptions, env: dict[str, str], logs: Path) -> None:
    argv = [
        *_CLI, "dashboard", "--config", str(options.config_path),
        "--port", str(options.dashboard_port), "--host", options.dashboard_host,
    ]  # fmt: skip
    plan.ports[options.dashboard_port] = "--dashboard-port"
    base = f"http://{options.dashboard_host}:{options.dashboard_port}"
    plan.children.append(
        ChildSpec("dashboard", argv, logs / "dashboard.log", env=env, required=False,
                  ready=lambda: httpx.get(base, timeout=2).status_code == 200)
    )  # fmt: skip
    plan.urls["dashboard"] = base
