"""The alert rules fire from scraped data: a real HTTP server exposes the bundled service's
metrics (counters, a latency histogram, the busy ratio, the router's replica count) as
the test changes them, the real scrape source and collector read it every 30 s of a
simulated clock for four hours, the store rolls up each minute, and the alert engine
judges what was stored. Ground truth is what the server's counters added."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.build import build_channels
from alerts.engine import AlertEngine
from collector.run import Collector
from collector.sources import ScrapeSource, ScrapeTarget
from inferplane.config import parse_config
from inferplane.store import Store, open_store
from tests.local_servers import text_server

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)
BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIG = """\
endpoints:
  - name: chat
    target: {kind: local, model: some/model}
    price: {gpu_per_hour_usd: 2.0}
    latency_target_seconds: 2.0
alerts:
  rules:
    - {kind: token_spike}
    - {kind: idle_gpu, floor: 0.1, for_hours: 2}
    - {kind: latency_slo, for_minutes: 5}
"""


@dataclass
class Replica:
    """What one replica's /metrics says; the test moves it on each step."""

    busy: float = 0.05
    prompt: float = 0.0
    generated: float = 0.0
    requests: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)  # cumulative count per bucket bound
    latency_count: float = 0.0
    created: float = T0.timestamp() - 3600

    def serve(self, requests: int, prompt: int, generated: int, seconds: float) -> None:
        self.requests += requests
        self.prompt += prompt
        self.generated += generated
        self.latency_count += requests
        for bound in BUCKETS:
            if seconds <= bound:
                self.latency[bound] = self.latency.get(bound, 0.0) + requests

    def text(self) -> str:
        labels = 'model="m",endpoint="chat",replica="r1"'
        lines = [f"inferplane_engine_busy_ratio{{{labels}}} {self.busy}"]
        for name, value in (
            ("prompt_tokens", self.prompt),
            ("generated_tokens", self.generated),
            ("requests", self.requests),
        ):
            lines += [
                f"# TYPE inferplane_{name} counter",
                f"inferplane_{name}_total{{{labels}}} {value}",
                f"inferplane_{name}_created{{{labels}}} {self.created}",
            ]
        lines.append("# TYPE inferplane_request_latency_seconds histogram")
        bucket = "inferplane_request_latency_seconds_bucket"
        lines += [f'{bucket}{{{labels},le="{b}"}} {self.latency.get(b, 0.0)}' for b in BUCKETS]
        lines += [
            f'{bucket}{{{labels},le="+Inf"}} {self.latency_count}',
            f"inferplane_request_latency_seconds_count{{{labels}}} {self.latency_count}",
            f"inferplane_request_latency_seconds_sum{{{labels}}} 0",
            'inferplane_router_ready_replicas{model="m",endpoint="chat",replica="router"} 1',
        ]
        return "\n".join(lines) + "\n"


@pytest.fixture
def replica() -> Iterator[tuple[Replica, str]]:
    state = Replica()
    with text_server(state.text) as url:
        yield state, url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'inferplane.db'}")
    yield opened
    opened.close()


def test_spike_idle_gpu_and_latency_fire_from_what_was_scraped(
    store: Store, replica: tuple[Replica, str]
) -> None:
    server, url = replica
    source = ScrapeSource("scrape", [ScrapeTarget("chat", url)], retries=1)
    collector = Collector(
        store, [source], source_endpoints={"scrape": ["chat"]}, source_intervals={"scrape": 30}
    )
    config = parse_config(CONFIG)
    engine = AlertEngine(store, config, build_channels(config, {}))
    end = T0 + timedelta(hours=4)
    spike_from, slow_from = end - timedelta(minutes=6), end - timedelta(minutes=12)
    served_in_spike = 0.0
    at = T0
    try:
        while at <= end:
            # Five requests of 100 prompt and 100 generated tokens every 30 s (2,000 tokens
            # a minute); in the last six minutes ten times the requests; in the last twelve
            # every answer takes 4 s against the 2 s target. The GPU idles at 5 % all along.
            requests = 50 if at > spike_from else 5
            server.serve(requests, 100 * requests, 100 * requests, 4.0 if at > slow_from else 0.4)
            if at > spike_from:
                served_in_spike += 200 * requests
            report = collector.collect_metrics(source, at)
            assert report.error is None, report.error
            if at.second == 0:
                store.rollup(at)
            at += STEP
    finally:
        source.close()
    findings = {f.rule: f for f in engine.evaluate(end + timedelta(seconds=1)).findings}
    assert set(findings) == {"token_spike", "idle_gpu", "latency_slo"}, findings
    assert findings["latency_slo"].figures["p95_seconds"] > 2.0
    assert findings["idle_gpu"].cost_per_hour_usd == pytest.approx(2.0)  # one idle replica
    # What the rule judged is what the server's counters added (20,000 tokens a minute).
    counted = store.read_series("chat", "prompt_tokens", spike_from, end + STEP, "raw", replica="r1")
    counted += store.read_series("chat", "generated_tokens", spike_from, end + STEP, "raw", replica="r1")
    assert sum(v for t, v in counted if t > spike_from) == pytest.approx(served_in_spike)
