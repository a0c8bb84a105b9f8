"""What one collect cycle costs: CPU time to scrape, normalize and store ~200 series.

A local HTTP server answers a bundled-service exposition for ``replicas`` replicas (about
20 vocabulary series each, with histogram buckets); the collector scrapes it into a
SQLite store. The figure is CPU seconds per cycle as a share of one core at the interval.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["run_collect_benchmark"]


def _exposition(replicas: int, tick: int) -> bytes:
    registry = CollectorRegistry()
    labels = ["model", "endpoint", "replica"]
    running = Gauge("inferplane_requests_running", "r", labels, registry=registry)
    waiting = Gauge("inferplane_requests_waiting", "w", labels, registry=registry)
    prompt = Counter("inferplane_prompt_tokens", "p", labels, registry=registry)
    generated = Counter("inferplane_generated_tokens", "g", labels, registry=registry)
    latency = Histogram("inferplane_request_latency_seconds", "l", labels, registry=registry)
    ttft = Histogram("inferplane_time_to_first_token_seconds", "t", labels, registry=registry)
    for replica in range(replicas):
        values = ("m", "bench", str(replica))
        running.labels(*values).set(replica % 5)
        waiting.labels(*values).set(tick % 3)
        prompt.labels(*values).inc(1000 * tick + replica)
        generated.labels(*values).inc(300 * tick + replica)
        for i in range(tick % 7 + 1):
            latency.labels(*values).observe(0.1 * (i + 1))
            ttft.labels(*values).observe(0.01 * (i + 1))
    return generate_latest(registry)


def run_collect_benchmark(replicas: int = 25, cycles: int = 20, interval_s: float = 15.0) -> dict[str, Any]:
    """CPU seconds per collect cycle over ``replicas`` scrape targets, and its share of a core."""
    from collector.run import Collector
    from collector.sources.scrape import ScrapeSource, ScrapeTarget
    from inferplane.store import open_store

    tick = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _exposition(1, tick[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    targets = [ScrapeTarget("bench", url, replica=str(r)) for r in range(replicas)]
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'bench.db'}")
        collector = Collector(store, [ScrapeSource("bench", targets)])
        cpu, series = [], 0
        try:
            for cycle in range(cycles):
                tick[0] = cycle
                started = time.process_time()
                reports = collector.run_once()
                cpu.append(time.process_time() - started)
                series = max(series, reports[0].samples)
        finally:
            collector.close()
            store.close()
            server.shutdown()
    per_cycle = statistics.median(cpu[1:])  # the first cycle pays for imports and schema caches
    return {
        "targets": replicas,
        "samples_per_cycle": series,
        "cpu_seconds_per_cycle_median": round(per_cycle, 4),
        "core_share_at_interval": round(per_cycle / interval_s, 5),
        "interval_s": interval_s,
        "note": "CPU of this process (scrape, parse, normalize, store); the HTTP server threads are included",
    }
