"""The Prometheus that ``inferplane up`` starts when one is on PATH.

It scrapes what the config's direct-scrape sources scrape (the router and its replicas),
so that PromQL, Prometheus' own UI and anything that reads Prometheus (Grafana, a
``prometheus`` source in another config) see the same series. The collector keeps
reading the services directly, as the config says: a Prometheus that is stopped or
missing costs nothing but its own URL.

``prometheus_config`` is pure: the config in, Prometheus' YAML (as data) out.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from commands.up import ChildSpec
from inferplane.config import InferplaneConfig, ScrapeSource

__all__ = ["prometheus_child", "prometheus_config"]


def prometheus_config(config: InferplaneConfig) -> dict[str, Any] | None:
    """One job per scrape source, one static target per URL labelled with its endpoint
    (and replica); None when the config scrapes nothing."""
    sources = [source for source in config.sources if isinstance(source, ScrapeSource)]
    if not sources:
        return None
    jobs = []
    for source in sources:
        groups = []
        for target in source.targets:
            url = urlsplit(target.url)
            labels = {"endpoint": target.endpoint, **({"replica": target.replica} if target.replica else {})}
            groups.append((url.path or "/metrics", url.scheme, {"targets": [url.netloc], "labels": labels}))
        # Prometheus sets the path and scheme per job: one job per distinct pair.
        for path, scheme in sorted({(path, scheme) for path, scheme, _ in groups}):
            jobs.append(
                {
                    "job_name": f"{source.name}{'' if path == '/metrics' else path.replace('/', '_')}",
                    "scrape_interval": f"{max(1, round(source.interval_s))}s",
                    "scrape_timeout": f"{max(1, min(round(source.interval_s), round(source.timeout_s)))}s",
                    "metrics_path": path,
                    "scheme": scheme,
                    "static_configs": [g for p, s, g in groups if (p, s) == (path, scheme)],
                }
            )
    return {"global": {"scrape_interval": "15s"}, "scrape_configs": jobs}


def prometheus_child(
    config: InferplaneConfig, run_dir: Path, logs: Path, port: int, env: dict[str, str]
) -> ChildSpec | None:
    """The Prometheus child on ``127.0.0.1:port``, or None without a prometheus on PATH
    or without a scrape source."""
    binary = shutil.which("prometheus", path=env.get("PATH"))
    generated = prometheus_config(config)
    if binary is None or generated is None:
        return None
    config_file = run_dir / "prometheus.yml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(generated, sort_keys=False), encoding="utf-8")
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={run_dir.parent / 'prometheus'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    base = f"http://127.0.0.1:{port}"
    return ChildSpec(
        "prometheus",
        argv,
        logs / "prometheus.log",
        env=env,
        required=False,
        ready=lambda: httpx.get(base + "/-/ready", timeout=2).status_code == 200,
    )
