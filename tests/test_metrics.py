"""/metrics: the inferplane_ vocabulary, right values, and promtool's approval."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx

from inference import metrics as service_metrics
from inference import router_metrics
from tests.conftest import ServiceProcess

README = Path(__file__).resolve().parent.parent / "README.md"

EXPECTED = [
    "inferplane_requests_running",
    "inferplane_requests_waiting",
    "inferplane_prompt_tokens_total",
    "inferplane_generated_tokens_total",
    "inferplane_request_latency_seconds_bucket",
    "inferplane_time_to_first_token_seconds_bucket",
    "inferplane_batch_size_bucket",
    "inferplane_model_load_seconds",
    "inferplane_cache_hits_total",
    "inferplane_engine_busy_ratio",
    "inferplane_engine_busy_seconds_total",
    "inferplane_requests_rejected_total",
]


def test_metrics_pass_promtool_and_carry_the_labels(service: ServiceProcess) -> None:
    httpx.post(service.url + "/generate", json={"prompt": "Hello there", "max_tokens": 4}, timeout=60)
    text = httpx.get(service.url + "/metrics").text
    for name in EXPECTED:
        assert f"\n{name}{{" in text, f"{name} missing from /metrics"
    assert 'model="smollm2-135m-instruct"' in text and 'endpoint="default"' in text
    assert 'replica="0"' in text
    assert "inferplane_gpu_utilization_ratio" not in text, "no GPU here: no GPU reading, not a zero"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by test.sh (Debian package prometheus)"
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_token_counters_and_histograms_follow_the_requests(service: ServiceProcess) -> None:
    before = {
        n: service.metric(n)
        for n in (
            "inferplane_prompt_tokens_total",
            "inferplane_generated_tokens_total",
            "inferplane_request_latency_seconds_count",
            "inferplane_time_to_first_token_seconds_count",
            "inferplane_batch_size_count",
        )
    }
    reply = httpx.post(
        service.url + "/v1/completions",
        timeout=60,
        json={"prompt": "Count: one, two,", "max_tokens": 6, "temperature": 0.8},
    )
    usage = reply.json()["usage"]
    after = {n: service.metric(n) for n in before}
    assert (
        after["inferplane_prompt_tokens_total"] - before["inferplane_prompt_tokens_total"]
        == usage["prompt_tokens"]
    )
    assert (
        after["inferplane_generated_tokens_total"] - before["inferplane_generated_tokens_total"]
        == usage["completion_tokens"]
    )
    assert (
        after["inferplane_request_latency_seconds_count"]
        == before["inferplane_request_latency_seconds_count"] + 1
    )
    assert (
        after["inferplane_time_to_first_token_seconds_count"]
        == before["inferplane_time_to_first_token_seconds_count"] + 1
    )
    # one prefill plus one decode step per further token
    assert (
        after["inferplane_batch_size_count"] - before["inferplane_batch_size_count"]
        >= usage["completion_tokens"]
    )
    assert service.metric("inferplane_model_load_seconds") > 0
    assert 0 <= service.metric("inferplane_engine_busy_ratio") <= 1


def test_the_readme_metrics_table_lists_the_service_metrics_table() -> None:
    # Both tables are data; a metric added, renamed or dropped in one shows up here.
    section = README.read_text(encoding="utf-8").split("\n### Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `inferplane_")]
    documented = {name for row in rows for name in re.findall(r"`(inferplane_\w+)", row.split("|")[1])}
    assert documented == {spec.name for spec in service_metrics.METRICS.values()}


def test_the_router_metrics_the_readme_names_exist() -> None:
    named = set(re.findall(r"inferplane_router_\w+", README.read_text(encoding="utf-8")))
    assert named, "the README describes the router's metrics"
    assert named <= {spec.name for spec in router_metrics.METRICS.values()}
