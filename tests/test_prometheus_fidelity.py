"""Fidelity: what we export and what we ask Prometheus, run against a real Prometheus.

The bundled service runs with exactly the environment of the kustomize-rendered
Deployment (deploy/kubernetes/base), and Debian's Prometheus scrapes it at the two
common intervals, 15 s and 1 min, while a load driver keeps requests flowing. Then every
query of the exported KEDA ScaledObject (GPU/busy and concurrency variants), every HPA
``Pods`` metric, and every figure the Prometheus source reads (through the source itself,
at the collector's default 15 s interval, as configured in the base's inferplane.yaml)
must come back non-empty, and the token rates must move with the load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from autoscaler.export import hpa, keda_scaled_object
from collector.sources import PromEndpoint, PrometheusSource
from inference.replica_process import ReplicaProcess
from inferplane.config import Endpoint, KubernetesTarget
from tests.conftest import start_service
from tests.local_servers import running_prometheus, wait_for
from tests.test_kubernetes_manifests import BASE, as_models, build, mounted_config, pod_environment

pytestmark = pytest.mark.slow

POD = "chat-llm-7c9d8b6f5-q4m2x"
SCRAPE = """global:
  scrape_interval: {interval}
scrape_configs:
  # As a cluster's pod job labels a target; the series' own endpoint label is the service's.
  - job_name: kubernetes-pods
    static_configs:
      - targets: ["{target}"]
        labels: {{namespace: inference, pod: {pod}}}
"""
# The collector's default interval (config: sources[].interval_s).
COLLECT_SPAN = timedelta(seconds=15)


@dataclass
class Stack:
    replica: ReplicaProcess
    prometheus: dict[str, str]  # scrape interval -> URL
    endpoint: Endpoint
    source_selector: str


def _load(url: str, stop: threading.Event) -> None:
    """Requests back to back until told to stop (the rates need tokens in every window)."""
    with httpx.Client(timeout=120) as client:
        i = 0
        while not stop.is_set():
            client.post(url + "/generate", json={"prompt": f"Count {i}:", "max_tokens": 8})
            i += 1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Iterator[Stack]:
    docs = as_models(build(BASE))
    env = pod_environment(docs, "chat-llm", POD)
    settings = {
        k.removeprefix("INFERPLANE_").lower(): v for k, v in env.items() if k.startswith("INFERPLANE_")
    }
    tmp = tmp_path_factory.mktemp("fidelity")
    config = mounted_config(docs, tmp)
    [endpoint] = [e for e in config.endpoints if isinstance(e.target, KubernetesTarget)]
    [source] = [s for s in config.sources if s.kind == "prometheus"]
    [selector] = [e.selector for e in source.endpoints if e.endpoint == endpoint.name]
    replica = start_service(tmp, **settings)
    stop = threading.Event()
    driver = threading.Thread(target=_load, args=(replica.url, stop), daemon=True)
    try:
        urls: dict[str, str] = {}
        with running_prometheus(_config(tmp, "15s", replica), tmp / "p15s") as urls["15s"]:
            with running_prometheus(_config(tmp, "1m", replica), tmp / "p1m") as urls["1m"]:
                driver.start()
                yield Stack(replica, urls, endpoint, selector)
    finally:
        stop.set()
        if driver.is_alive():
            driver.join(120)
        replica.stop()


def _config(tmp: Path, interval: str, replica: ReplicaProcess) -> Path:
    (tmp / f"p{interval}").mkdir(exist_ok=True)
    path = tmp / f"prometheus-{interval}.yml"
    path.write_text(SCRAPE.format(interval=interval, target=urlsplit(replica.url).netloc, pod=POD))
    return path


def _instant(url: str, query: str, at: datetime | None = None) -> list[dict[str, Any]]:
    params = {"query": query, **({"time": str(at.timestamp())} if at else {})}
    answer = httpx.get(url + "/api/v1/query", params=params, timeout=10)
    assert answer.status_code == 200, (query, answer.text)
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _exported_queries(endpoint: Endpoint) -> dict[str, str]:
    """Every PromQL the exports contain: the KEDA triggers of the GPU (busy) policy and of
    the concurrency policy, and each HPA Pods metric summed over the endpoint's pods."""
    assert endpoint.autoscaling is not None
    policy = endpoint.autoscaling.model_copy(update={"target_concurrency": 4})
    concurrency = endpoint.model_copy(update={"autoscaling": policy})
    queries: dict[str, str] = {}
    for variant, ep in (("busy", endpoint), ("concurrency", concurrency)):
        for trigger in keda_scaled_object(ep, "http://unused")["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                queries[f"keda {variant} {trigger['name']}"] = trigger["metadata"]["query"]
        for metric in hpa(ep)["spec"]["metrics"]:
            name = metric["pods"]["metric"]["name"]
            if name == "inferplane_gpu_utilization_ratio" and not _has_gpu():
                continue  # NVML only; a CPU replica has none (the KEDA query falls back)
            queries[f"hpa {variant} {name}"] = f'sum({name}{{endpoint="{endpoint.name}"}})'
    return queries


def _has_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


@pytest.mark.parametrize("interval", ["15s", "1m"])
def test_every_exported_query_answers_at_common_scrape_intervals(stack: Stack, interval: str) -> None:
    url = stack.prometheus[interval]
    queries = _exported_queries(stack.endpoint)
    assert any(q.startswith("keda busy gpu") for q in queries)

    def missing() -> list[str]:
        return [f"{name}: {query}" for name, query in queries.items() if not _instant(url, query)]

    try:
        wait_for(lambda: not missing(), 240, f"every exported query at a {interval} scrape interval")
    except AssertionError as error:
        raise AssertionError(f"{error}; still empty: {missing()}") from error


@pytest.mark.parametrize(("interval", "seconds"), [("15s", 15.0), ("1m", 60.0)])
def test_the_prometheus_source_reads_rates_at_common_scrape_intervals(
    stack: Stack, interval: str, seconds: float
) -> None:
    """The source, asked for the collector's 15 s span, learns the scrape interval from
    Prometheus and widens its rate window to four scrapes; every figure the service
    exports on CPU comes back, and the token rates move with the load."""
    ep = PromEndpoint(stack.endpoint.name, stack.source_selector)
    source = PrometheusSource("prom", stack.prometheus[interval], [ep])
    wanted = {
        "requests_running",
        "requests_waiting",
        "prompt_tokens_per_second",
        "generated_tokens_per_second",
        "requests_per_second",
        "request_latency_seconds_p50",
        "request_latency_seconds_p95",
        "time_to_first_token_seconds_p50",
        "time_to_first_token_seconds_p95",
        "gpu_utilization",
    }
    try:

        def read() -> dict[str, float] | None:
            end = datetime.now(UTC)
            got = {s.metric: s.value for s in source.fetch(end - COLLECT_SPAN, end)}
            return got if wanted <= got.keys() and got["generated_tokens_per_second"] > 0 else None

        first = wait_for(read, 240, f"every figure through the source at a {interval} scrape interval")
        assert source.scrape_interval_s(ep) == seconds
        assert source.rate_window_s(ep, COLLECT_SPAN.total_seconds()) == 4 * seconds

        def moved() -> dict[str, float] | None:
            got = read()
            return (
                got
                if got and got["generated_tokens_per_second"] != first["generated_tokens_per_second"]
                else None
            )

        wait_for(moved, 3 * seconds + 30, "the token rate to move with the next scrape")
    finally:
        source.close()


def test_a_window_of_the_collection_span_alone_reads_no_rate(stack: Stack) -> None:
    """Why the window is widened: at a 1 min scrape interval the collector's own 15 s span
    holds at most one sample, and ``rate()`` over it is empty."""
    ep = PromEndpoint(stack.endpoint.name, stack.source_selector)
    fixed = PrometheusSource(
        "prom", stack.prometheus["1m"], [ep], scrape_interval_s=COLLECT_SPAN.total_seconds() / 4
    )
    try:
        wait_for(lambda: _instant(stack.prometheus["1m"], "inferplane_requests_total"), 150, "two scrapes")
        end = datetime.now(UTC)
        got = {s.metric for s in fixed.fetch(end - COLLECT_SPAN, end)}
    finally:
        fixed.close()
    assert "requests_running" in got and "generated_tokens_per_second" not in got
