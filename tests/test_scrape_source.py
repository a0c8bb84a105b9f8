"""ScrapeSource against the real bundled service, a dead port and a server answering 500."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from collector.samples import Sample, SourceError
from collector.sources import METRIC_SOURCES, ScrapeSource, ScrapeTarget
from tests.conftest import ServiceProcess, free_port
from tests.local_servers import text_server


def _now() -> datetime:
    return datetime.now(UTC)


def _fetch(source: ScrapeSource) -> list[Sample]:
    end = _now()
    return list(source.fetch(end - timedelta(seconds=15), end))


def _generate(service: ServiceProcess, n: int) -> None:
    for i in range(n):
        response = httpx.post(
            service.url + "/generate", json={"prompt": f"Count to {i + 3}:", "max_tokens": 4}, timeout=120
        )
        assert response.status_code == 200, response.text


class _Failing(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def failing_server() -> Iterator[tuple[str, type[_Failing]]]:
    handler = type("Handler", (_Failing,), {"hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_registry_names_the_scrape_source() -> None:
    assert METRIC_SOURCES["scrape"] is ScrapeSource


def test_rates_from_the_real_service(service: ServiceProcess) -> None:
    source = ScrapeSource("local", [ScrapeTarget("chat", service.url)], timeout_s=10, retries=2)
    try:
        first = _fetch(source)
        assert {s.metric for s in first} >= {"requests_running", "requests_waiting"}
        assert not any(s.metric.endswith("_per_second") for s in first), "first reading gives no rate"
        _generate(service, 2)
        second = _fetch(source)
    finally:
        source.close()
    by_metric = {s.metric: s for s in second}
    assert by_metric["generated_tokens_per_second"].value > 0
    assert by_metric["requests_per_second"].value > 0
    assert by_metric["request_latency_seconds_p95"].value > 0
    assert "requests_running" in by_metric
    assert {s.endpoint for s in second} == {"chat"}
    assert {s.replica for s in second if s.metric not in ("replicas", "ready_replicas")} == {"0"}
    assert by_metric["ready_replicas"].value == 1 and by_metric["replicas"].value == 1
    assert source.last_errors == {}


def test_a_dead_target_does_not_stop_the_live_one(
    service: ServiceProcess, caplog: pytest.LogCaptureFixture
) -> None:
    dead = ScrapeTarget("chat", f"http://127.0.0.1:{free_port()}", replica="gone")
    live = ScrapeTarget("chat", service.url)
    source = ScrapeSource("two", [dead, live], timeout_s=5, retries=2, backoff_s=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="collector.sources.scrape"):
            samples = _fetch(source)
            _fetch(source)
    finally:
        source.close()
    assert {s.replica for s in samples if s.metric not in ("replicas", "ready_replicas")} == {"0"}
    counts = {s.metric: s.value for s in samples if s.metric in ("replicas", "ready_replicas")}
    assert counts == {"replicas": 2.0, "ready_replicas": 1.0}, "the dead target is not ready"
    assert "requests_running" in {s.metric for s in samples}
    assert list(source.last_errors) == [dead]
    assert "'two'" in source.last_errors[dead]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "a repeated failure is logged once"


def test_a_500_target_is_retried_then_reported(failing_server: tuple[str, type[_Failing]]) -> None:
    url, handler = failing_server
    target = ScrapeTarget("chat", url)
    source = ScrapeSource("flaky", [target], timeout_s=5, retries=3, backoff_s=0.01)
    try:
        with pytest.raises(SourceError, match=r"'flaky'.*every target failed"):
            _fetch(source)
    finally:
        source.close()
    assert handler.hits == 3
    assert "HTTP 500" in source.last_errors[target]


def test_all_targets_down_raises(failing_server: tuple[str, type[_Failing]]) -> None:
    dead = ScrapeTarget("a", f"http://127.0.0.1:{free_port()}")
    source = ScrapeSource("down", [dead], timeout_s=2, retries=1)
    try:
        with pytest.raises(SourceError, match="'down'"):
            _fetch(source)
    finally:
        source.close()
    assert dead in source.last_errors


def test_unknown_dialect_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="sglang"):
        ScrapeSource("x", [ScrapeTarget("a", "http://127.0.0.1:1", dialect="sglang")])


def test_nan_and_counter_resets_are_handled_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bodies = [
        "vllm:generation_tokens_total 500\nvllm:num_requests_running NaN\n",
        "vllm:generation_tokens_total 30\nvllm:num_requests_running NaN\n",
        "vllm:generation_tokens_total 10\nvllm:num_requests_running NaN\n",
    ]

    with text_server(lambda: bodies.pop(0)) as url:
        source = ScrapeSource("scrape", [ScrapeTarget("chat", url, dialect="vllm")])
        caplog.set_level("INFO", logger="collector.sources.scrape")
        try:
            rates = []
            for second in range(3):
                at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=10 * second)
                samples = source.fetch(at - timedelta(seconds=10), at)
                rates += [s.value for s in samples if s.metric == "generated_tokens_per_second"]
                assert not [s for s in samples if s.metric == "requests_running"]  # NaN is no sample
        finally:
            source.close()
    assert rates == [3.0, 1.0]  # each reset: the new value over the elapsed 10 s
    assert source.non_finite_total == 3
    assert caplog.text.count("non-finite") == 1 and caplog.text.count("counter reset") == 1
    assert "source 'scrape'" in caplog.text


ROUTER_METRICS = (
    "# TYPE inferplane_router_replicas gauge\n"
    'inferplane_router_replicas{endpoint="chat",model="m",replica="router"} 2.0\n'
    "# TYPE inferplane_router_ready_replicas gauge\n"
    'inferplane_router_ready_replicas{endpoint="chat",model="m",replica="router"} 1.0\n'
)
REPLICA_METRICS = '# TYPE inferplane_requests_running gauge\ninferplane_requests_running{replica="0"} 1.0\n'


def _answering(routes: dict[str, str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        text = routes.get(request.url.host + ":" + str(request.url.port))
        if text is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text=text, headers={"content-type": "text/plain"})

    return httpx.Client(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("with_router", "expected"),
    [
        # The router's report is the count: its target is no replica (counted, it doubled
        # the GPU cost of a one-replica endpoint), and it knows the starting one too.
        pytest.param(True, {("replicas", "router"): 2.0, ("ready_replicas", "router"): 1.0}, id="router"),
        # No router: every target is a replica, ready when it answered.
        pytest.param(False, {("replicas", ""): 2.0, ("ready_replicas", ""): 1.0}, id="replicas-only"),
    ],
)
def test_replica_counts_come_from_the_router_when_it_reports_them(
    with_router: bool, expected: dict[tuple[str, str], float]
) -> None:
    routes = {"router:8100": ROUTER_METRICS, "replica:8101": REPLICA_METRICS}
    targets = [
        *([ScrapeTarget("chat", "http://router:8100/metrics")] if with_router else []),
        ScrapeTarget("chat", "http://replica:8101/metrics", replica="8101"),
        ScrapeTarget("chat", "http://replica:8102/metrics", replica="8102"),  # no replica there now
    ]
    source = ScrapeSource("local", targets, retries=1, client=_answering(routes))
    try:
        samples = _fetch(source)
    finally:
        source.close()
    counts = {(s.metric, s.replica): s.value for s in samples if s.metric in ("replicas", "ready_replicas")}
    assert counts == expected
