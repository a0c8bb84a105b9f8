"""PrometheusSource against a real Prometheus scraping the real bundled service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from collector.samples import Sample, SourceError
from collector.sources import METRIC_SOURCES, PromEndpoint, PrometheusSource
from collector.sources.prometheus import parse_duration
from tests.conftest import ServiceProcess
from tests.local_servers import free_port, running_prometheus, wait_for

pytestmark = pytest.mark.slow

CONFIG = """global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: inferplane
    static_configs:
      - targets: ["{target}"]
"""


@pytest.fixture(scope="module")
def prometheus(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(CONFIG.replace("{target}", urlsplit(service.url).netloc))
    with running_prometheus(config, tmp) as url:
        yield url


def _fetch(source: PrometheusSource, window_s: float = 30) -> dict[str, Sample]:
    end = datetime.now(UTC)
    return {s.metric: s for s in source.fetch(end - timedelta(seconds=window_s), end)}


def _generate(service: ServiceProcess, n: int) -> None:
    for i in range(n):
        response = httpx.post(
            service.url + "/generate", json={"prompt": f"Say {i}:", "max_tokens": 4}, timeout=120
        )
        assert response.status_code == 200, response.text


def test_figures_read_back_through_prometheus(service: ServiceProcess, prometheus: str) -> None:
    source = PrometheusSource("prom", prometheus, [PromEndpoint("chat", 'job="inferplane"')], timeout_s=10)
    try:
        wait_for(lambda: "requests_running" in _fetch(source), 60, "a first scrape")
        _generate(service, 3)

        def ready() -> dict[str, Sample] | None:
            got = _fetch(source)
            wanted = (
                "generated_tokens_per_second",
                "prompt_tokens_per_second",
                "request_latency_seconds_p95",
            )
            return got if all(got.get(m) and got[m].value > 0 for m in wanted) else None

        got = wait_for(ready, 60, "token rates and latency in Prometheus")

        def several_points() -> list[Sample] | None:
            end = datetime.now(UTC)
            points = list(source.fetch_range(end - timedelta(seconds=20), end, timedelta(seconds=2)))
            times = {p.time for p in points if p.metric == "requests_running"}
            busy = any(p.metric == "generated_tokens_per_second" and p.value > 0 for p in points)
            return points if len(times) > 1 and busy else None

        # Fresh traffic, so the range's short rate windows see tokens however slowly the
        # earlier polling went on a loaded machine.
        _generate(service, 3)
        series = wait_for(several_points, 30, "a range with several points and token rates")
    finally:
        source.close()
    assert got["generated_tokens_per_second"].value > 0
    assert got["request_latency_seconds_p95"].value >= got["request_latency_seconds_p50"].value > 0
    assert "requests_running" in got
    assert {s.endpoint for s in got.values()} == {"chat"}
    assert any(s.metric == "generated_tokens_per_second" and s.value > 0 for s in series)


def test_tokens_counted_through_prometheus_are_the_tokens_served(
    service: ServiceProcess, prometheus: str
) -> None:
    """Counter increases read through Prometheus add up to the ``usage`` the clients got,
    across a restart of the collector (the baselines carried as JSON)."""
    selector = [PromEndpoint("chat", 'job="inferplane"')]
    source = PrometheusSource("prom", prometheus, selector, timeout_s=10)
    counted: list[float] = []

    def read(into: PrometheusSource) -> None:
        counted.extend(
            s.value for s in _fetch(into).values() if s.metric in ("prompt_tokens", "generated_tokens")
        )

    served = 0
    try:
        wait_for(lambda: "prompt_tokens" in _fetch(source), 60, "a first reading (the baseline)")

        def settled() -> bool:  # the earlier tests' tokens have all reached Prometheus
            time.sleep(1.5)  # one scrape interval and a half between reads: not a sync
            return _fetch(source)["prompt_tokens"].value == 0

        wait_for(settled, 60, "no token counted between two scrapes")
        for i in range(3):
            body = {"prompt": f"Count to {i + 2}:", "max_tokens": 5, "temperature": 0.7}
            usage = httpx.post(service.url + "/v1/completions", json=body, timeout=120).json()["usage"]
            served += usage["prompt_tokens"] + usage["completion_tokens"]
            if i == 1:  # the collector restarts: a new source from the saved baselines
                read(source)
                saved = source.counter_state()
                source.close()
                source = PrometheusSource("prom", prometheus, selector, timeout_s=10)
                source.restore(saved)
        wait_for(lambda: read(source) or sum(counted) >= served, 30, "Prometheus to scrape the last answer")
    finally:
        source.close()
    assert sum(counted) == served


def test_an_endpoint_without_data_gives_no_samples(prometheus: str) -> None:
    source = PrometheusSource("prom", prometheus, [PromEndpoint("ghost", '{job="no-such-job"}')])
    try:
        assert _fetch(source) == {}
    finally:
        source.close()


def test_a_prometheus_that_is_down_raises_source_error() -> None:
    source = PrometheusSource(
        "prom-down",
        f"http://127.0.0.1:{free_port()}",
        [PromEndpoint("chat", 'job="x"')],
        retries=2,
        backoff_s=0.01,
    )
    try:
        with pytest.raises(SourceError, match="prom-down"):
            _fetch(source)
    finally:
        source.close()


def test_registry_names_the_prometheus_source() -> None:
    assert METRIC_SOURCES["prometheus"] is PrometheusSource


class _FlakyPrometheus:
    """A local HTTP server speaking Prometheus' query API: it answers the scripted
    statuses first (then 200 with one vector), and 500 for every query naming job="bad"."""

    def __init__(self, statuses: list[int]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs

        self.statuses, self.calls = list(statuses), 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.calls += 1
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                status = 500 if 'job="bad"' in query else (state.statuses.pop(0) if state.statuses else 200)
                vector = [{"metric": {}, "value": [1_700_000_000, "0.5"]}]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": vector}})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode() if status == 200 else b"boom")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("name", "statuses", "endpoints", "outcome"),
    [
        ("two 500s then an answer", [500, 503], ["chat"], "samples"),
        ("a 429 then an answer", [429], ["chat"], "samples"),
        ("500 every time", [500] * 50, ["chat"], "SourceError"),
        ("one endpoint failing", [], ["chat", "bad"], "partial"),
        ("a 400 is not retried", [400], ["chat"], "SourceError"),
    ],
)  # fmt: skip
def test_a_prometheus_answering_errors(
    name: str, statuses: list[int], endpoints: list[str], outcome: str
) -> None:
    server = _FlakyPrometheus(statuses)
    source = PrometheusSource(
        "prom",
        server.url,
        [PromEndpoint(e, f'job="{e}"') for e in endpoints],
        retries=3,
        backoff_s=0,
        scrape_interval_s=1,  # not learned: every request here is a query
    )
    try:
        if outcome == "SourceError":
            with pytest.raises(SourceError, match=r"source 'prom'.*HTTP Status Code"):
                _fetch(source)
            first_query_calls = 1 if statuses[0] == 400 else 3
            assert server.calls == first_query_calls, name  # retried exactly up to the limit
            return
        end = datetime.now(UTC)
        got = list(source.fetch(end - timedelta(seconds=30), end))
        assert got and {s.endpoint for s in got} == {"chat"}, name
        failed = [ep.endpoint for ep in source.last_errors]
        assert failed == (["bad"] if outcome == "partial" else []), name
    finally:
        source.close()
        server.close()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1 m", "s15", "15sec"])
def test_a_bad_duration_names_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("[", r"\[")):
        parse_duration(text)


@pytest.mark.parametrize(
    ("name", "set_interval", "learned_window_s"),
    [
        ("no targets API (a vector answers): Prometheus' default 1 min", None, 240.0),
        ("set in the constructor", 5.0, 20.0),
    ],
)
def test_window_where_the_interval_cannot_be_learned(
    name: str, set_interval: float | None, learned_window_s: float
) -> None:
    server = _FlakyPrometheus([])
    source = PrometheusSource(
        "prom", server.url, [PromEndpoint("chat", 'job="chat"')], scrape_interval_s=set_interval
    )
    try:
        [ep] = source.endpoints
        assert source.rate_window_s(ep, 15) == learned_window_s, name
        assert source.rate_window_s(ep, 600) == 600, name  # a longer span is kept
    finally:
        source.close()
        server.close()
