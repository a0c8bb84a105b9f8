"""The compose stack's own configuration files, run for real on loopback (no Docker here).

``deploy/prometheus/prometheus.yml`` and ``deploy/compose/inferplane.yaml`` are used as
committed, with only the compose host names swapped for loopback addresses: a real
Prometheus scrapes a real inference service, and the collector built from the control
plane's config reads the endpoint's figures back through it into a store. This fails if
the scrape job, the selector, the metric names or the two files drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from collector.build import build_collector
from inferplane.config import load_config
from inferplane.store import open_store
from tests.conftest import ServiceProcess
from tests.local_servers import free_port, running_prometheus, wait_for

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PLANE_CONFIG = ROOT / "deploy" / "compose" / "inferplane.yaml"


@pytest.fixture(scope="module")
def prometheus(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on the compose config; "inference:8000" is the test's service, the dcgm
    target a closed port (as on a host without the gpu profile)."""
    tmp = tmp_path_factory.mktemp("compose-prometheus")
    text = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert "inference:8000" in text and "dcgm-exporter:9400" in text
    text = text.replace("inference:8000", urlsplit(service.url).netloc)
    (tmp / "prometheus.yml").write_text(text.replace("dcgm-exporter:9400", f"127.0.0.1:{free_port()}"))
    with running_prometheus(tmp / "prometheus.yml", tmp) as url:
        yield url


@pytest.mark.slow
def test_the_control_plane_config_reads_the_service_through_compose_prometheus(
    service: ServiceProcess, prometheus: str, tmp_path: Path
) -> None:
    text = PLANE_CONFIG.read_text(encoding="utf-8")
    assert "url: http://prometheus:9090" in text
    config_file = tmp_path / "inferplane.yaml"
    config_file.write_text(text.replace("http://prometheus:9090", prometheus), encoding="utf-8")
    [endpoint] = load_config(config_file).endpoints
    for _ in range(3):  # tokens to count
        reply = httpx.post(
            service.url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 4}, timeout=60
        )
        assert reply.status_code == 200, reply.text

    # Prometheus scrapes every 5 s (the compose job's interval); a rate needs two points.
    wait_for(lambda: _scrapes(prometheus) >= 2, 60, "two scrapes of the service's token counter")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    collector, _, _ = build_collector(load_config(config_file), store)
    try:
        [report] = [r for r in collector.run_once() if r.source == "prometheus"]
        assert report.error is None and report.samples > 0, report.line()
        for metric in ("prompt_tokens_per_second", "generated_tokens_per_second", "requests_running"):
            assert collector.store.last_sample_time(endpoint.name, metric) is not None, metric
    finally:
        collector.close()
        store.close()


def _scrapes(prometheus: str) -> int:
    query = 'count_over_time(inferplane_prompt_tokens_total{job="inferplane"}[1m])'
    result = httpx.get(prometheus + "/api/v1/query", params={"query": query}, timeout=5).json()
    return max((int(float(item["value"][1])) for item in result["data"]["result"]), default=0)
