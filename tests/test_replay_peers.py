"""The peers the replay compares against (HPA, KEDA on the exported ScaledObject, Knative's
KPA) and the clairvoyant: each rule table-driven, each controller walked through time."""

from __future__ import annotations

import pytest
import yaml

from autoscaler.export import keda_scaled_object
from autoscaler.replay.hpa import (
    Behavior,
    HpaGpuPolicy,
    HpaScaler,
    RatePolicy,
    Rule,
    external_replicas,
    pods_metric_replicas,
)
from autoscaler.replay.keda import KedaPolicy, evaluate_query
from autoscaler.replay.knative import KnativePolicy
from autoscaler.replay.oracle import clairvoyant_schedule, spikes_capped
from autoscaler.replay.policies import FleetView
from autoscaler.replay.report import replay_rows
from autoscaler.replay.simulator import Scrape
from autoscaler.replay.workload import as_requests
from inferplane.config import parse_config
from inferplane.config.endpoints import Endpoint
from tests.test_replay import CAP, START, endpoint, steady


def view(replicas: int, ready: int, *scrapes: Scrape) -> FleetView:
    return FleetView(replicas, ready, list(scrapes))


def gpu(at: float, utilization: float, ready: int) -> Scrape:
    return Scrape(at, utilization, 0, 0, ready)


@pytest.mark.parametrize(
    ("values", "missing", "current", "expected"),
    [
        pytest.param([0.85, 0.85], 0, 2, 2, id="within-tolerance"),
        pytest.param([1.0, 1.0], 0, 2, 3, id="over-target"),
        pytest.param([0.2, 0.2, 0.2, 0.2], 0, 4, 1, id="under-target"),
        # Starting pods count at 0 on a scale-up: 2 x 1.0 over 4 pods is 0.625 of target,
        # which flips the direction, so the HPA holds.
        pytest.param([1.0, 1.0], 2, 4, 4, id="missing-on-scale-up-flips"),
        pytest.param([1.0, 1.0, 1.0], 1, 4, 4, id="missing-on-scale-up-within"),
        # On a scale-down the missing pods count at the target.
        pytest.param([0.2, 0.2], 2, 4, 3, id="missing-on-scale-down"),
        pytest.param([], 0, 3, 3, id="no-metrics"),
    ],
)
def test_hpa_pods_metric_rule(values: list[float], missing: int, current: int, expected: int) -> None:
    assert pods_metric_replicas(values, missing, current, 0.8) == expected


@pytest.mark.parametrize(
    ("value", "metric_type", "current", "expected"),
    [
        pytest.param(100.0, "AverageValue", 2, 5, id="average-value"),
        pytest.param(42.0, "AverageValue", 2, 2, id="average-within-tolerance"),
        pytest.param(40.0, "Value", 2, 4, id="value-times-ready"),
        pytest.param(5.0, "AverageValue", 0, 1, id="from-zero"),
    ],
)
def test_hpa_external_metric_rule(value: float, metric_type: str, current: int, expected: int) -> None:
    assert external_replicas(value, 20.0, metric_type, current, current) == expected


def test_hpa_scale_up_is_limited_to_double_or_four_pods_per_15_s() -> None:
    scaler = HpaScaler(1, 100)
    assert scaler.normalize(0.0, 2, 50) == 6  # max(2 x 2, 2 + 4)
    assert scaler.normalize(5.0, 6, 50) == 6  # the period's budget is spent
    assert scaler.normalize(15.0, 6, 50) == 12  # a new period: 100 % of 6
    assert scaler.normalize(30.0, 12, 50) == 24


def test_hpa_scale_down_waits_for_the_300_s_stabilization_window() -> None:
    scaler = HpaScaler(1, 100)
    assert scaler.normalize(0.0, 8, 8) == 8
    for t in range(15, 300, 15):
        assert scaler.normalize(float(t), 8, 2) == 8, t  # the highest of the window is 8
    assert scaler.normalize(300.0, 8, 2) == 2


def test_hpa_first_sync_records_the_count_it_found() -> None:
    # recordInitialRecommendation: the count found at the first sync holds a scale-down
    # for the stabilization window, as a just-created HPA does.
    scaler = HpaScaler(1, 100)
    assert scaler.normalize(0.0, 6, 2) == 6
    assert scaler.normalize(285.0, 6, 2) == 6
    assert scaler.normalize(300.0, 6, 2) == 2


def test_hpa_rate_limits_count_the_other_directions_changes_of_the_period() -> None:
    # 2 pods per 60 s up, scale-down at once: 5 -> 3, then a demand for 9 within the
    # period. The period began at 5 (3 + the 2 removed), so up to 7, not 3 + 2.
    behavior = Behavior(
        scale_up=Rule(0.0, (RatePolicy("Pods", 2, 60),)),
        scale_down=Rule(0.0, (RatePolicy("Percent", 100, 15),)),
    )
    scaler = HpaScaler(1, 100, behavior)
    scaler.started = True  # past the first sync
    assert scaler.normalize(0.0, 5, 3) == 3
    assert scaler.normalize(30.0, 3, 9) == 7


def test_hpa_policy_walks_a_busy_then_idle_endpoint() -> None:
    hpa = HpaGpuPolicy(1, 20)
    scrapes = [gpu(0.0, 1.0, 2)]
    assert hpa(0.0, view(2, 2, *scrapes)) == 3  # 2 x 1.0 / 0.8 = 2.5 -> 3
    scrapes.append(gpu(15.0, 1.0, 2))  # the third replica is still starting: missing, held
    assert hpa(15.0, view(3, 2, *scrapes)) == 3
    t = 30.0
    while t < 400.0:
        scrapes.append(gpu(t, 0.1, 3))
        n = hpa(t, view(3, 3, *scrapes))
        if t < 315.0:
            assert n == 3, t  # the recommendation of 3 at 15 s pins it for 300 s
        t += 15.0
    assert n == 1


def test_hpa_leaves_out_the_pods_a_scale_in_is_deleting() -> None:
    """Two pods at the target and two being deleted, still finishing requests at 0.3: the
    HPA judges the two it keeps (groupPods ignores a pod with a deletionTimestamp) and
    holds, where counting all four at their mean (0.55, 0.69 of the target) would ask for 3."""
    hpa = HpaGpuPolicy(1, 20)
    hpa.scaler.started = True
    scrape = Scrape(0.0, 0.55, 0, 0, 4, draining=2, kept_utilization=0.8)
    assert hpa(0.0, view(2, 2, scrape)) == 2


def test_keda_evaluates_the_queries_the_export_writes() -> None:
    scrape = Scrape(0.0, 0.5, 7, 30, 4)
    assert evaluate_query('avg(inferplane_gpu_utilization_ratio{endpoint="e"})', scrape) == 0.5
    assert evaluate_query('avg(DCGM_FI_DEV_GPU_UTIL{pod=~"d-.*"}) / 100', scrape) == 0.5
    query = 'sum(inferplane_requests_running{endpoint="e"}) + sum(inferplane_requests_waiting{endpoint="e"})'
    assert evaluate_query(query, scrape) == 37
    # The export's GPU trigger falls back to the CPU busy ratio: the GPU series answers here.
    either = 'avg(inferplane_gpu_utilization_ratio{e="e"}) or avg(inferplane_engine_busy_ratio{e="e"})'
    assert evaluate_query(either, scrape) == 0.5
    assert (
        evaluate_query("avg(inferplane_engine_busy_ratio) or avg(inferplane_gpu_utilization_ratio)", scrape)
        == 0.5
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("sum(vllm:num_requests_running)", "vllm:num_requests_running", id="unknown-metric"),
        pytest.param("inferplane_requests_waiting", "vector", id="not-aggregated"),
        pytest.param("sum(inferplane_requests_waiting", "expected '\\)'", id="unbalanced"),
        pytest.param("rate(inferplane_requests_waiting[1m])", "rate", id="function"),
    ],
)
def test_keda_refuses_what_it_cannot_evaluate(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_query(query, Scrape(0.0, 0.5, 1, 1, 1))


def _kubernetes(**policy: object) -> Endpoint:
    text = yaml.safe_dump(
        {
            "endpoints": [
                {
                    "name": "chat",
                    "target": {"kind": "kubernetes", "namespace": "ns", "deployment": "chat"},
                    "min_replicas": 1,
                    "max_replicas": 30,
                    "price": {"gpu_per_hour_usd": 2.0},
                    "ttft_target_seconds": 1.0,
                    "autoscaling": policy,
                }
            ]
        }
    )
    return parse_config(text).endpoints[0]


def test_keda_scales_on_the_exported_concurrency_trigger_and_its_behavior() -> None:
    exported = keda_scaled_object(_kubernetes(target_concurrency=10, max_step=2), "http://p:9090")
    keda = KedaPolicy(exported)
    # 55 in flight over a target of 10 per replica wants 6; the exported behavior allows
    # max_step (2) per scale-out cooldown.
    assert keda(0.0, view(2, 2, Scrape(0.0, 0.9, 5, 50, 2))) == 4
    assert keda(15.0, view(4, 2, Scrape(15.0, 0.9, 5, 50, 2))) == 4  # within the period
    later = keda.scaler.behavior.scale_up.policies[0].period_s
    assert keda(later, view(4, 4, Scrape(later, 0.9, 5, 50, 4))) == 6


def test_keda_cools_down_to_zero_and_nothing_it_queries_wakes_it_there() -> None:
    exported = keda_scaled_object(
        _kubernetes(
            off_hours_replicas=0,
            schedules=[],
            poll_interval_s=30,
            scale_in_cooldown_s=120,
        ),
        "http://p:9090",
    )
    exported["spec"]["minReplicaCount"] = 0  # scale to zero allowed
    keda = KedaPolicy(exported)
    idle = Scrape(0.0, 0.0, 0, 0, 1)
    assert keda(0.0, view(1, 1, idle)) == 1  # the HPA's floor is one
    assert keda(60.0, view(1, 1, Scrape(60.0, 0.0, 0, 0, 1))) == 1  # idle 60 s < cooldown
    assert keda(150.0, view(1, 1, Scrape(150.0, 0.0, 0, 0, 1))) == 0  # idle 150 s >= 120
    # At zero no pod exports the metrics its triggers query (the export's own note): the
    # requests the router holds do not wake it, on KEDA's poll or after.
    assert keda(165.0, view(0, 0, Scrape(165.0, None, 3, 0, 0))) == 0
    assert keda(180.0, view(0, 0, Scrape(180.0, None, 3, 0, 0))) == 0
    assert keda(210.0, view(0, 0, Scrape(210.0, None, 9, 0, 0))) == 0


def test_keda_refuses_trigger_types_it_does_not_emulate() -> None:
    exported = keda_scaled_object(_kubernetes(), "http://p:9090")
    exported["spec"]["triggers"].append({"type": "cron", "metadata": {}})
    with pytest.raises(ValueError, match="cron"):
        KedaPolicy(exported)


def _inflight(at: float, n: int, ready: int) -> Scrape:
    return Scrape(at, 1.0, 0, n, ready)


def test_knative_panics_on_a_burst_and_never_scales_down_in_panic() -> None:
    kpa = KnativePolicy(10, 1, 100)  # target 7 in flight per replica
    scrapes = [_inflight(float(t), 7, 1) for t in range(0, 60)]
    assert kpa(59.0, view(1, 1, *scrapes)) == 1  # stable at the target
    scrapes += [_inflight(float(t), 70, 1) for t in range(60, 66)]  # a burst of 70
    n = kpa(65.0, view(1, 1, *scrapes))
    assert n == 10 and kpa.panic_since == 65.0  # the panic window sees 70 / 7
    scrapes += [_inflight(float(t), 7, 10) for t in range(66, 100)]
    assert kpa(99.0, view(10, 10, *scrapes)) == 10  # in panic: no scale-down
    scrapes += [_inflight(float(t), 7, 10) for t in range(100, 200)]
    assert kpa(199.0, view(10, 10, *scrapes)) == 5  # out of panic: at most half per tick
    assert kpa(201.0, view(5, 5, *scrapes)) == 2


def test_knative_scales_to_zero_only_after_the_grace_period() -> None:
    kpa = KnativePolicy(10, 0, 10)
    scrapes = [_inflight(float(t), 0, 1) for t in range(0, 100)]
    assert kpa(60.0, view(1, 1, *scrapes)) == 1
    assert kpa(80.0, view(1, 1, *scrapes)) == 1
    assert kpa(90.0, view(1, 1, *scrapes)) == 0


def test_the_knative_row_scales_to_zero_where_the_endpoint_allows_it() -> None:
    # Knative's floor is the endpoint's min-scale: a quiet spell of three minutes between
    # two busy ones takes it to zero (60 s stable window, 30 s grace), and its activator
    # wakes it for the second.
    trace = steady(2.0, 60) + steady(2.0, 60, at=240.0)
    zero = endpoint().model_copy(update={"min_replicas": 0})
    (row,) = replay_rows(as_requests(trace), CAP, zero, start=START, only=["knative"])
    assert row.replicas.startswith("0-"), row.replicas
    (kept,) = replay_rows(as_requests(trace), CAP, endpoint(), start=START, only=["knative"])
    assert kept.replicas.startswith("1-"), kept.replicas


def test_clairvoyant_starts_each_replica_a_cold_start_ahead_and_keeps_short_dips() -> None:
    oracle = [1, 1, 1, 1, 3, 3, 1, 2, 1, 1, 1, 1]
    # 60 s cold start, 15 s intervals: 4 intervals ahead.
    assert clairvoyant_schedule(oracle, 60, 15) == [3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1]


def test_spikes_are_capped_at_the_local_median_plus_a_spare_and_a_sustained_rise_is_kept() -> None:
    spike = [1, 1, 1, 1, 12, 1, 1, 1, 1]
    assert spikes_capped(spike, 2, 4) == [1, 1, 1, 1, 3, 1, 1, 1, 1]
    assert spikes_capped(spike, 11, 4) == spike  # a spare as large as the spike keeps it
    rise = [1, 1, 1, 6, 6, 6, 6, 6, 6, 6]
    assert spikes_capped(rise, 0, 2) == rise  # its neighbourhood rises with it


def test_every_row_runs_and_the_clairvoyant_sits_between_oracle_and_static_best() -> None:
    trace = steady(1.0, 120) + steady(8.0, 60, at=120) + steady(1.0, 180, at=180)
    rows = {r.policy: r for r in replay_rows(as_requests(trace), CAP, endpoint(max_replicas=8), start=START)}
    assert list(rows) == [
        "configured",
        "static_best",
        "static_mean",
        "threshold_80_30",
        "hpa",
        "keda",
        "knative",
        "clairvoyant",
        "oracle",
    ]
    clairvoyant, oracle = rows["clairvoyant"], rows["oracle"]
    assert clairvoyant.slo_attainment >= 0.99
    assert oracle.gpu_hours <= clairvoyant.gpu_hours <= rows["static_best"].gpu_hours
    assert rows["hpa"].scale_actions > 0 and rows["keda"].scale_actions > 0
    assert rows["knative"].scale_actions > 0


def test_static_peak_still_names_static_best() -> None:
    rows = replay_rows(as_requests(steady(2.0, 60)), CAP, endpoint(), start=START, only=["static_peak"])
    assert [r.policy for r in rows] == ["static_best"]
    with pytest.raises(ValueError, match="unknown row"):
        replay_rows(as_requests(steady(2.0, 60)), CAP, endpoint(), start=START, only=["nope"])


def test_rows_in_two_processes_are_the_rows_in_one() -> None:
    trace = as_requests(steady(1.0, 120) + steady(8.0, 60, at=120))
    one = replay_rows(trace, CAP, endpoint(max_replicas=8), start=START)
    two = replay_rows(trace, CAP, endpoint(max_replicas=8), start=START, workers=2)
    assert one == two


def test_the_opening_count_is_the_full_oracles() -> None:
    from autoscaler.replay.oracle import oracle_schedule
    from autoscaler.replay.report import Slo, _Replay

    trace = as_requests(steady(6.0, 50) + steady(1.0, 300, at=50))
    schedule, _ = oracle_schedule(trace, CAP, ttft_target_s=1.0, max_replicas=8, poll_s=15)
    opening = schedule[:2]  # the 30 s cold start over 15 s polls
    expected = max(1, -(-sum(opening) // len(opening)))
    assert _Replay(trace, CAP, endpoint(max_replicas=8), START, Slo(1.0)).first() == expected
