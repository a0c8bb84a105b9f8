"""Scenario tests of the token-spike rule: synthetic series walked minute by minute."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alerts.spike import SpikeSettings, detect_spike, spike_intervals
from commands.bench_alerts import run_alert_benchmark

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday, midnight
MINUTE = timedelta(minutes=1)
# Raw-minute rate and a 3-minute "for": the step tests read exact figures off a flat series.
STRICT = SpikeSettings(factor=2.5, rate_minutes=1, for_minutes=3, weekly=False)


def at(minute: int) -> datetime:
    return START + minute * MINUTE


def series(values: list[float] | np.ndarray, skip: set[int] | None = None) -> list[tuple[datetime, float]]:
    """One point per minute from START; minutes in ``skip`` are missing (a gap)."""
    return [(at(i), float(v)) for i, v in enumerate(values) if i not in (skip or set())]


def flat(minutes: int, level: float = 10_000.0) -> list[float]:
    return [level] * minutes


def test_steady_noisy_load_never_fires() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10_000, 1_500, 6 * 60).clip(0)
    assert spike_intervals(series(values), SpikeSettings()) == []


def test_step_fires_after_for_minutes_with_since_ratio_and_baseline() -> None:
    values = flat(120) + flat(20, 30_000) + flat(60)
    points = series(values)
    assert detect_spike(points, at(121), STRICT) is None  # two minutes above: not yet
    finding = detect_spike(points, at(122), STRICT)
    assert finding is not None
    assert finding.since == at(120)
    assert finding.baseline_per_minute == 10_000
    assert finding.rate_per_minute == 30_000
    assert finding.ratio == pytest.approx(3.0)
    assert spike_intervals(points, STRICT) == [(at(122), at(139))]


def test_one_high_minute_fires_at_once_unless_the_workload_has_such_minutes() -> None:
    # On a flat workload one minute at 3x is news: it fires in that minute (delay 0).
    burst = flat(120) + flat(1, 30_000) + flat(60)
    assert spike_intervals(series(burst), SpikeSettings()) == [(at(120), at(120))]
    # A bursty workload (idle, then 6x bursts) has shown such minutes in its own baseline:
    # its next burst of the same height is normal, one 1.5x higher is not.
    bursty = [60_000.0 if i % 10 == 0 else 0.0 if i % 10 < 5 else 10_000.0 for i in range(240)]
    assert spike_intervals(series(bursty), SpikeSettings()) == []
    bursty[200] = 90_000.0  # its 2-minute mean (45,000) is above the bursts' too
    assert spike_intervals(series(bursty), SpikeSettings()) == [(at(200), at(201))]


def test_requests_grown_threefold_fire_at_once_even_on_a_bursty_workload() -> None:
    # Idle and busy minutes alternate, 1,000 tokens a request; from minute 150 every
    # request is 3,000 tokens (a prompt bug). The first tripled minute (90,000) is no
    # more than the workload's own bursts, so the volume cannot tell yet: only tokens per
    # request catch it in its first minute.
    requests = [0.0 if i % 4 == 0 else 30.0 if i % 4 < 3 else 90.0 for i in range(240)]
    tokens = [r * (3_000 if 150 <= i < 155 else 1_000) for i, r in enumerate(requests)]
    volume_only = spike_intervals(series(tokens), SpikeSettings())
    assert volume_only and volume_only[0][0] > at(150)
    fired = spike_intervals(series(tokens), SpikeSettings(), requests=series(requests))
    assert fired[0][0] == at(150)
    finding = detect_spike(series(tokens), at(150), SpikeSettings(), requests=series(requests))
    assert finding is not None and finding.tokens_per_request == 3_000
    assert finding.baseline_tokens_per_request == 1_000
    # The same workload without the growth never fires.
    steady = [r * 1_000 for r in requests]
    assert spike_intervals(series(steady), SpikeSettings(), requests=series(requests)) == []


def test_a_spike_does_not_hide_the_next_one() -> None:
    # A run's minutes join the baseline at the typical level: the second spike, 40 minutes
    # after the first and inside the same three-hour baseline, fires as the first did.
    rng = np.random.default_rng(3)
    values = rng.normal(10_000, 500, 300)
    values[120:125] *= 3
    values[165:170] *= 3
    assert [first for first, _ in spike_intervals(series(values), SpikeSettings())] == [at(120), at(165)]


def test_below_the_floor_never_fires() -> None:
    values = flat(120, 100) + flat(30, 1_000) + flat(30, 100)
    assert spike_intervals(series(values), SpikeSettings(floor_per_minute=5_000)) == []
    assert spike_intervals(series(values), SpikeSettings(floor_per_minute=500)) != []


def test_long_spike_keeps_firing_against_its_frozen_baseline() -> None:
    values = flat(120) + flat(180, 30_000) + flat(60)
    points = series(values)
    assert spike_intervals(points, STRICT) == [(at(122), at(299))]
    finding = detect_spike(points, at(299), STRICT)
    assert finding is not None and finding.since == at(120) and finding.baseline_per_minute == 10_000


def test_gap_is_unknown_not_zero() -> None:
    quiet_gap = series(flat(240), skip=set(range(100, 110)))
    assert spike_intervals(quiet_gap, SpikeSettings()) == []
    # A short gap inside a spike neither ends it nor starts a new interval.
    spike_gap = series(flat(120) + flat(30, 30_000) + flat(60), skip={130, 131})
    assert spike_intervals(spike_gap, STRICT) == [(at(122), at(149))]
    assert detect_spike(spike_gap, at(130), STRICT) is None  # no reading now: no verdict
    # Time passing in a gap does not complete a pending run.
    pending = series(flat(120) + flat(2, 30_000) + flat(5) + flat(60), skip=set(range(122, 127)))
    assert spike_intervals(pending, STRICT) == []


def test_weekly_baseline_absorbs_a_daily_peak_but_not_a_quiet_hour_spike() -> None:
    days = 8
    values = np.full(days * 1440, 1_000.0)
    for day in range(days):
        values[day * 1440 + 14 * 60 : day * 1440 + 15 * 60] = 5_000  # the daily 14:00 peak
    spike = 7 * 1440 + 3 * 60  # day 8, 03:00: a quiet hour
    values[spike : spike + 10] = 5_000
    intervals = spike_intervals(series(values), SpikeSettings())
    first_week = [i for i in intervals if i[0] < at(7 * 1440)]
    last_day = [i for i in intervals if i[0] >= at(7 * 1440)]
    assert len(first_week) == 7  # the rolling baseline alone cannot know the peak is daily
    assert len(last_day) == 1
    assert at(spike) <= last_day[0][0] <= at(spike + 2)
    assert spike_intervals(series(values), SpikeSettings(weekly=False))[-1][0] == at(7 * 1440 + 14 * 60)


@pytest.mark.parametrize(
    ("field", "value"),
    [("factor", 1.0), ("for_minutes", 0), ("floor_per_minute", -1.0), ("mad_k", float("nan"))],
    ids=["factor-not-above-1", "for-zero", "negative-floor", "nan-band"],
)
def test_bad_settings_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SpikeSettings(**{field: value})  # type: ignore[arg-type]


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        spike_intervals([(datetime(2024, 1, 1), 1.0)], SpikeSettings())


# A folder holding mooncake_conversation.csv (see bench/README.md); the test is skipped
# without it, as the trace is not packaged.
TRACES = Path(os.environ.get("INFERPLANE_TRACES", "/nonexistent"))


@pytest.mark.parametrize("injection", ["scale", "surge"])
def test_goals_on_generated_days_with_a_daily_cycle(injection: str) -> None:
    report = run_alert_benchmark(None, seeds=2, injection=injection, workload="daily")  # type: ignore[arg-type]
    json.dumps(report)
    assert "daily cycle" in report["method"]
    assert report["alerts_without_injection"] == 0
    assert report["recall"] >= 0.95 and report["precision"] >= 0.95
    assert report["median_detection_delay_seconds"] <= 60


def test_goals_on_the_packaged_trace_for_scaled_spikes() -> None:
    report = run_alert_benchmark(None, seeds=2)
    assert "rotated" in report["method"] and report["settings"]["factor"] == 2.0
    assert "shorter than the day" in report["method"]  # an hour tiled: the caveat is said
    assert len(report["per_seed"]) == 2
    assert report["alerts_without_injection"] == 0
    assert report["recall"] >= 0.95 and report["precision"] >= 0.95
    assert report["median_detection_delay_seconds"] <= 60
    # Most scaled spikes over this bursty trace are invisible in token totals: the
    # tokens per request catch them.
    assert report["window_mean_ceiling_recall"]["within_3_minutes"] < 0.95


def test_surges_on_the_packaged_trace_stay_the_known_miss() -> None:
    # The bench/README.md row: extra traffic of the usual size over a trace that swings
    # from idle to 3.7x its mean is caught late or not at all, never falsely.
    report = run_alert_benchmark(None, seeds=2, injection="surge")
    assert report["alerts_without_injection"] == 0 and report["precision"] >= 0.95
    assert report["missed"] == sum(r["injected"] - r["detected"] for r in report["per_seed"]) > 0
    assert report["recall"] < report["window_mean_ceiling_recall"]["whole_spike"]
    # Why no setting meets the goals there: even knowing the clean day in advance, fewer
    # than half of the surges show a token window above it within 60 s, and a rule that
    # compares tokens or requests with its own past highest windows, at the least margin
    # that keeps the clean days quiet, misses recall or delay.
    assert report["window_mean_ceiling_recall"]["within_2_minutes"] < 0.5
    causal = report["causal_window_mean_ceiling"]
    assert causal["margin"] > 1.0
    assert causal["recall"] < 0.95 or causal["median_detection_delay_seconds"] > 60


def test_causal_ceiling_takes_the_least_quiet_margin_and_the_first_minute_above_it() -> None:
    from commands.bench_alerts import _causal_ceiling, _past_highest_ratios

    settings = SpikeSettings(
        baseline_minutes=30, min_baseline_minutes=30, volume_baseline_minutes=30, rate_minutes=2
    )
    clean = np.vstack([np.full(80, 100.0), np.ones(80)])
    clean[0, 45] = 120.0  # the clean day's own burst: 1.2x the highest minute before it
    spiked = clean.copy()
    spiked[0, 60:63] = [100.0, 300.0, 300.0]  # visible from its second minute
    spiked[1, 70:73] = [3.0, 3.0, 3.0]  # requests alone, from its first minute
    ratios = _past_highest_ratios(clean, spiked, [60, 70], 3, settings)
    assert ratios["clean"] == pytest.approx(1.2)
    ceiling = _causal_ceiling([ratios])
    assert ceiling["margin"] == pytest.approx(1.2)
    assert ceiling["recall"] == 1.0
    assert ceiling["median_detection_delay_seconds"] == 30.0  # delays 60 s and 0 s
    quiet = _causal_ceiling([ratios, {"clean": 5.0, "spikes": []}])  # a burstier clean day
    assert quiet["margin"] == 5.0 and quiet["recall"] == 0.0


def test_a_spike_s_first_minutes_do_not_lift_the_threshold_for_the_next_one() -> None:
    # Spike A opens on its third minute (the 3-minute mean); its first two minutes, below
    # the 1-minute limit alone, are the spike all the same and join the baseline clipped.
    # Left at 19,000 they would lift the 1- and 2-minute limits to 1.25 x 19,000 and spike
    # B (2.2x, five minutes) would wait for its third minute.
    values = [*flat(120), 19_000.0, 19_000.0, 25_000.0, *flat(27), *flat(5, 22_000), *flat(30)]
    requests = [v / 1_000 for v in values]  # the usual size: only the volume tells
    fired = spike_intervals(series(values), SpikeSettings(), requests=series(requests))
    assert [first for first, _ in fired] == [at(122), at(150)]


def test_injections_scale_grows_tokens_and_surge_adds_requests() -> None:
    from commands.bench_alerts import _inject

    clean = np.array([[0.0, 1_000.0, 2_000.0, 1_000.0], [0.0, 1.0, 2.0, 1.0]])
    scaled = _inject(clean, [1], 2, 3.0, "scale")
    assert scaled.tolist() == [[0.0, 3_000.0, 6_000.0, 1_000.0], [0.0, 1.0, 2.0, 1.0]]
    surged = _inject(clean, [0], 2, 3.0, "surge")  # + 2 x the mean minute (1,000 tokens, 1 request)
    assert surged.tolist() == [[2_000.0, 3_000.0, 2_000.0, 1_000.0], [2.0, 3.0, 2.0, 1.0]]


@pytest.mark.skipif(
    not (TRACES / "mooncake_conversation.csv").is_file(), reason="INFERPLANE_TRACES names no Mooncake trace"
)
def test_goals_on_the_mooncake_trace() -> None:
    for injection in ("scale", "surge"):
        report = run_alert_benchmark(
            str(TRACES / "mooncake_conversation.csv"),
            seeds=2,
            injection=injection,  # type: ignore[arg-type]
        )
        assert report["alerts_without_injection"] == 0
        assert report["recall"] >= 0.95 and report["precision"] >= 0.95
        assert report["median_detection_delay_seconds"] <= 60


def test_skipping_quiet_minutes_changes_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    # The cheap bounds that spare the medians on quiet minutes must only skip minutes that
    # could not open a run: with and without them, the same intervals on a bursty day.
    import alerts.spike as spike

    rng = np.random.default_rng(11)
    requests = rng.poisson(rng.choice([0, 20, 200], size=1440, p=[0.2, 0.5, 0.3])).astype(float)
    tokens = requests * rng.normal(2_000, 300, 1440).clip(100)
    tokens[600:605] *= 3
    tokens[900:905] += 400_000
    args = (series(tokens), SpikeSettings())
    fast = spike_intervals(*args, requests=series(requests))
    monkeypatch.setattr(spike, "_may_open", lambda *_: True)
    assert spike_intervals(*args, requests=series(requests)) == fast
    assert any(first <= at(604) and last >= at(600) for first, last in fast)


def test_a_trace_as_long_as_the_day_is_not_said_to_be_tiled(tmp_path: Path) -> None:
    # Two days of a steady minute rate: the day is one rotated copy, with no caveat.
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [
        f"2023-11-16 {h:02d}:{m:02d}:{s:02d}.000000,1500,100"
        for h in range(24)
        for m in range(60)
        for s in (0, 20, 40)
    ]
    path = tmp_path / "day.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run_alert_benchmark(str(path), seeds=1, spikes=2)
    assert "copies of the 1439-minute trace" in report["method"]
    assert "shorter than the day" not in report["method"]
