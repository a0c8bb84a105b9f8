"""The dialect tables and the pure normalizer, on exposition text in each project's format."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from collector.dialects import DIALECTS, get_dialect
from collector.normalize import CounterState, bucket_quantile, normalize
from collector.samples import METRICS, SourceError
from collector.sources.prometheus import promql

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=10)


def _read(text: str, dialect: str, time: datetime = T0, state: CounterState | None = None, replica: str = ""):
    return normalize(
        text, endpoint="ep", dialect=dialect, time=time, state=state or CounterState(), replica=replica
    )


def _values(result) -> dict[tuple[str, str], float]:
    return {(s.metric, s.replica): s.value for s in result.samples}


def _two(dialect: str, first: str, second: str) -> dict[tuple[str, str], float]:
    return _values(_read(second, dialect, T1, _read(first, dialect).state))


GAUGES = {
    "inferplane": (
        "inferplane",
        """# TYPE inferplane_requests_running gauge
inferplane_requests_running{model="m",endpoint="default",replica="0"} 2.0
# TYPE inferplane_requests_waiting gauge
inferplane_requests_waiting{model="m",endpoint="default",replica="0"} 5.0
# TYPE inferplane_gpu_utilization_ratio gauge
inferplane_gpu_utilization_ratio{model="m",endpoint="default",replica="0",gpu="0"} 0.2
inferplane_gpu_utilization_ratio{model="m",endpoint="default",replica="0",gpu="1"} 0.6
# TYPE inferplane_gpu_memory_used_bytes gauge
inferplane_gpu_memory_used_bytes{model="m",endpoint="default",replica="0",gpu="0"} 1000.0
inferplane_gpu_memory_used_bytes{model="m",endpoint="default",replica="0",gpu="1"} 3000.0
inferplane_engine_busy_ratio{model="m",endpoint="default",replica="0"} 0.9
""",
        {
            ("requests_running", "0"): 2.0,
            ("requests_waiting", "0"): 5.0,
            ("gpu_utilization", "0"): 0.4,
            ("gpu_memory_used_bytes", "0"): 4000.0,
        },
    ),
    "inferplane-cpu-busy-share": (
        "inferplane",
        """# TYPE inferplane_engine_busy_ratio gauge
inferplane_engine_busy_ratio{model="m",endpoint="default",replica="0"} 0.9
""",
        {("gpu_utilization", "0"): 0.9},
    ),
    "vllm-new-kv-name": (
        "vllm",
        """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B"} 0.75
""",
        {("requests_running", ""): 3.0, ("requests_waiting", ""): 1.0},
    ),
    "vllm-old-kv-name": (
        "vllm",
        """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 4.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
""",
        {("requests_running", ""): 4.0},
    ),
    "tgi": (
        "tgi",
        """# TYPE tgi_queue_size gauge
tgi_queue_size 7
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 4
""",
        {("requests_waiting", ""): 7.0, ("requests_running", ""): 4.0},
    ),
    "triton": (
        "triton",
        """# HELP nv_inference_pending_request_count Instantaneous number of pending requests.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="llama",version="1"} 2
nv_inference_pending_request_count{model="embed",version="1"} 3
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{gpu_uuid="GPU-a"} 0.5
nv_gpu_utilization{gpu_uuid="GPU-b"} 1.0
# TYPE nv_gpu_memory_used_bytes gauge
nv_gpu_memory_used_bytes{gpu_uuid="GPU-a"} 2e9
""",
        {("requests_waiting", ""): 5.0, ("gpu_utilization", ""): 0.75, ("gpu_memory_used_bytes", ""): 2e9},
    ),
    "dcgm-old-Hostname": (
        "dcgm",
        """# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100",Hostname="node-1"} 50
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-b",device="nvidia0",modelName="NVIDIA A100",Hostname="node-2"} 10
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100",Hostname="node-1"} 1024
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100",Hostname="node-1"} 250
""",
        {
            ("gpu_utilization", "node-1"): 0.5,
            ("gpu_utilization", "node-2"): 0.1,
            ("gpu_memory_used_bytes", "node-1"): 1024.0 * 1024 * 1024,
        },
    ),
    "dcgm-new-hostname-and-profiling": (
        "dcgm",
        """# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",hostname="node-1"} 50
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a",hostname="node-1"} 0.42
""",
        {("gpu_utilization", "node-1"): 0.42},
    ),
    "dcgm-pod-label-wins": (
        "dcgm",
        'DCGM_FI_DEV_FB_USED{gpu="0",Hostname="node-1",pod="llm-7f9c",namespace="ai"} 2\n',
        {("gpu_memory_used_bytes", "llm-7f9c"): 2.0 * 1024 * 1024},
    ),
    "llamacpp": (
        "llamacpp",
        """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
""",
        {("requests_running", ""): 1.0, ("requests_waiting", ""): 2.0},
    ),
}


@pytest.mark.parametrize("row", list(GAUGES), ids=list(GAUGES))
def test_gauges_map_to_the_vocabulary_with_units_and_replicas(row: str) -> None:
    dialect, text, expected = GAUGES[row]
    got = _values(_read(text, dialect))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)


def test_kv_cache_usage_never_becomes_gpu_utilization() -> None:
    text = "vllm:kv_cache_usage_perc 0.9\nvllm:gpu_cache_usage_perc 0.9\n"
    assert _read(text, "vllm").samples == []


def test_target_replica_overrides_labels() -> None:
    text = 'inferplane_requests_running{replica="0"} 1\n'
    assert _values(_read(text, "inferplane", replica="r-9")) == {("requests_running", "r-9"): 1.0}


# (dialect, first text, second text 10 s later, vocabulary metric, expected rate)
COUNTERS = {
    "inferplane": (
        "inferplane",
        '# TYPE inferplane_generated_tokens counter\ninferplane_generated_tokens_total{replica="0"} 100\n'
        'inferplane_generated_tokens_created{replica="0"} 1.7e9\n',
        '# TYPE inferplane_generated_tokens counter\ninferplane_generated_tokens_total{replica="0"} 150\n'
        'inferplane_generated_tokens_created{replica="0"} 1.7e9\n',
        ("generated_tokens_per_second", "0"),
        5.0,
    ),
    "vllm-two-engines-summed": (
        "vllm",
        '# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{engine="0",model_name="m"} 10\n'
        'vllm:prompt_tokens_total{engine="1",model_name="m"} 20\n',
        '# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{engine="0",model_name="m"} 30\n'
        'vllm:prompt_tokens_total{engine="1",model_name="m"} 40\n',
        ("prompt_tokens_per_second", ""),
        4.0,
    ),
    "vllm-generation": (
        "vllm",
        'vllm:generation_tokens_total{model_name="m"} 0\n',
        'vllm:generation_tokens_total{model_name="m"} 120\n',
        ("generated_tokens_per_second", ""),
        12.0,
    ),
    "tgi-histogram-sum-as-counter": (
        "tgi",
        "# TYPE tgi_request_generated_tokens histogram\n"
        'tgi_request_generated_tokens_bucket{le="+Inf"} 2\ntgi_request_generated_tokens_sum 40\n'
        "tgi_request_generated_tokens_count 2\n",
        "# TYPE tgi_request_generated_tokens histogram\n"
        'tgi_request_generated_tokens_bucket{le="+Inf"} 4\ntgi_request_generated_tokens_sum 100\n'
        "tgi_request_generated_tokens_count 4\n",
        ("generated_tokens_per_second", ""),
        6.0,
    ),
    "tgi-input-length": (
        "tgi",
        "tgi_request_input_length_sum 5\n",
        "tgi_request_input_length_sum 25\n",
        ("prompt_tokens_per_second", ""),
        2.0,
    ),
    "triton-success": (
        "triton",
        'nv_inference_request_success{model="llama",version="1"} 10\n',
        'nv_inference_request_success{model="llama",version="1"} 30\n',
        ("requests_per_second", ""),
        2.0,
    ),
    "llamacpp": (
        "llamacpp",
        "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total 3469\n",
        "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total 3569\n",
        ("generated_tokens_per_second", ""),
        10.0,
    ),
}


@pytest.mark.parametrize("row", list(COUNTERS), ids=list(COUNTERS))
def test_counters_become_rates_over_two_readings(row: str) -> None:
    dialect, first, second, key, rate = COUNTERS[row]
    assert key not in _values(_read(first, dialect)), "a first reading gives no rate"
    assert _two(dialect, first, second)[key] == pytest.approx(rate)


def test_first_reading_gives_no_rate_not_zero() -> None:
    result = _read("vllm:generation_tokens_total 500\n", "vllm")
    assert result.samples == []
    assert len(result.state.readings) == 1


def test_counter_reset_rate_is_new_value_over_elapsed() -> None:
    got = _two("vllm", "vllm:generation_tokens_total 500\n", "vllm:generation_tokens_total 30\n")
    assert got[("generated_tokens_per_second", "")] == pytest.approx(3.0)


def test_reading_not_later_than_the_previous_gives_no_rate() -> None:
    state = _read("vllm:generation_tokens_total 1\n", "vllm", T1).state
    assert _read("vllm:generation_tokens_total 9\n", "vllm", T0, state).samples == []


def test_counter_state_is_per_endpoint() -> None:
    state = _read("vllm:generation_tokens_total 10\n", "vllm").state
    other = normalize(
        "vllm:generation_tokens_total 90\n", endpoint="other", dialect="vllm", time=T1, state=state
    )
    assert other.samples == []  # a different endpoint's first reading
    assert len(other.state.readings) == 2


def _hist(name: str, buckets: dict[str, float], labels: str = "") -> str:
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{{labels}le="{le}"}} {n}' for le, n in buckets.items()]
    lines += [
        f"{name}_count{{{labels.rstrip(',')}}} {buckets['+Inf']}",
        f"{name}_sum{{{labels.rstrip(',')}}} 1",
    ]
    return "\n".join(lines) + "\n"


def test_histogram_quantiles_from_bucket_deltas_hand_computed() -> None:
    name = "vllm:e2e_request_latency_seconds"
    first = _hist(name, {"0.1": 2, "0.5": 4, "1.0": 4, "+Inf": 4})
    second = _hist(name, {"0.1": 2, "0.5": 12, "1.0": 14, "+Inf": 14})
    got = _two("vllm", first, second)
    # Deltas: <=0.1: 0, <=0.5: 8, <=1: 10, +Inf: 10.
    # p50: rank 5 in (0.1, 0.5] holding 8 -> 0.1 + 0.4 * 5/8 = 0.35
    # p95: rank 9.5 in (0.5, 1] holding 2 (8..10) -> 0.5 + 0.5 * 1.5/2 = 0.875
    assert got[("request_latency_seconds_p50", "")] == pytest.approx(0.35)
    assert got[("request_latency_seconds_p95", "")] == pytest.approx(0.875)


def test_histogram_series_summed_by_le_and_scaled() -> None:
    name = "nv_inference_first_response_histogram_ms"
    zero: dict[str, float] = {"100": 0, "200": 0, "+Inf": 0}
    first = _hist(name, zero, 'model="a",') + _hist(name, zero, 'model="b",').split("\n", 1)[1]
    second = (
        _hist(name, {"100": 1, "200": 2, "+Inf": 2}, 'model="a",')
        + _hist(name, {"100": 1, "200": 2, "+Inf": 2}, 'model="b",').split("\n", 1)[1]
    )
    got = _two("triton", first, second)
    # Summed deltas: <=100: 2, <=200: 4. p50 rank 2 -> 100 ms; p95 rank 3.8 -> 100 + 100*1.8/2 = 190 ms.
    assert got[("time_to_first_token_seconds_p50", "")] == pytest.approx(0.1)
    assert got[("time_to_first_token_seconds_p95", "")] == pytest.approx(0.19)


def test_histogram_without_new_observations_gives_no_quantile() -> None:
    text = _hist("inferplane_request_latency_seconds", {"1.0": 3, "+Inf": 3}, 'replica="0",')
    assert _two("inferplane", text, text) == {}


def test_histogram_reset_uses_the_new_counts() -> None:
    name = "tgi_request_duration"
    first = _hist(name, {"1.0": 50, "2.0": 90, "+Inf": 100})
    second = _hist(name, {"1.0": 0, "2.0": 4, "+Inf": 4})
    got = _two("tgi", first, second)
    assert got[("request_latency_seconds_p50", "")] == pytest.approx(1.5)


BUCKETS = {
    "interpolates": (0.5, [(1.0, 2.0), (2.0, 4.0), (math.inf, 4.0)], 1.0),
    "rank-in-inf-bucket-returns-top-finite-bound": (0.95, [(1.0, 1.0), (math.inf, 10.0)], 1.0),
    "no-observations": (0.5, [(1.0, 0.0), (math.inf, 0.0)], None),
    "no-inf-bucket": (0.5, [(1.0, 3.0)], None),
    "empty": (0.5, [], None),
}


@pytest.mark.parametrize("row", list(BUCKETS), ids=list(BUCKETS))
def test_bucket_quantile(row: str) -> None:
    q, buckets, expected = BUCKETS[row]
    got = bucket_quantile(q, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_non_finite_values_are_dropped_and_counted(value: str) -> None:
    text = f'vllm:num_requests_running{{model_name="m"}} {value}\nvllm:num_requests_waiting 2\n'
    result = _read(text, "vllm")
    assert _values(result) == {("requests_waiting", ""): 2.0}
    assert result.non_finite == 1


@pytest.mark.parametrize(
    "text", ['vllm:num_requests_running{model_name="m" 1\n', "not a metric line at all\n", 'x "a"\n']
)
def test_malformed_text_raises_source_error_naming_the_source(text: str) -> None:
    with pytest.raises(SourceError, match="scraper-7"):
        normalize(text, endpoint="ep", dialect="vllm", time=T0, state=CounterState(), source="scraper-7")


def test_every_dialect_maps_only_to_vocabulary_names() -> None:
    assert set(DIALECTS) == {"inferplane", "vllm", "tgi", "triton", "dcgm", "llamacpp"}
    for dialect in DIALECTS.values():
        for mapping in dialect.mappings:
            assert set(mapping.vocabulary_names()) <= set(METRICS)


def test_unknown_dialect_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="llamacpp"):
        get_dialect("sglang")


def test_promql_from_the_same_rows() -> None:
    rows = {m.metric: m for m in DIALECTS["dcgm"].mappings}
    util = promql(rows["gpu_utilization"], 'job="gpu"', "60s")["gpu_utilization"]
    preferred, fallback = util.split(" or ")
    assert preferred == '(avg(DCGM_FI_PROF_GR_ENGINE_ACTIVE{job="gpu"}))'
    assert fallback == '((avg(DCGM_FI_DEV_GPU_UTIL{job="gpu"})) * 0.01)'
    rows = {m.metric: m for m in DIALECTS["vllm"].mappings}
    p95 = promql(rows["request_latency_seconds"], 'job="v"', "30s")["request_latency_seconds_p95"]
    assert p95 == (
        'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="v"}[30s])))'
    )
