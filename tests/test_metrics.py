"""/metrics: the inferplane_ vocabulary, right values, and promtool's approval."""

from __future__ import annotations

import shutil
import subprocess

import httpx

from tests.conftest import ServiceProcess

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
