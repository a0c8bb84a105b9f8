"""Evaluation benchmark of the token-spike rule on a replayed request trace.

::

    report = run_alert_benchmark(None)  # the packaged Azure code trace, 10 seeds
    report["precision"], report["recall"], report["median_detection_delay_seconds"]

How the long series is built (``method`` in the report): the trace is bucketed into
tokens (prompt + generated) and requests per minute (the rule reads both, as the
collector stores ``requests_per_second`` beside the token rates); its last minute is
dropped when the trace ends inside it (a partial minute reads as a fake dip). With
``workload="trace"`` (the default) a day is built from copies of the one-hour trace,
each copy **rotated** by its own random number of minutes (``tiling="rotate"``). A
rotation keeps every per-minute value and every minute-to-minute neighbour of the trace,
bar one seam per copy, so both the trace's per-minute distribution (its zero minutes and
6x bursts) and its burst lengths survive; nothing is smoothed or resampled.
``tiling="shuffle"`` shuffles the minutes of each copy instead: same distribution, no
burst clustering (a harsher, less faithful test). With ``workload="daily"`` the days are
generated instead: Poisson arrivals at the trace's mean request rate times (1 + 0.7 sin)
over 24 hours, a random phase per seed, each request's size drawn from the trace's
requests.

Injection (``injection``): ``scale`` (the default, the issue's "3x for 5 minutes")
multiplies the tokens of each spike's minutes by ``spike_factor`` (not their requests), as
a prompt bug that grows every request does; ``surge`` adds (factor - 1) x the day's mean
minute on top, tokens and requests alike, as extra traffic of the usual size does, so the
spike runs at about factor x the normal volume even over idle minutes.

Scoring: ``spikes`` non-overlapping spikes (``spike_minutes`` long, at least
``_SPACING_MINUTES`` apart, after a warm-up of one baseline) are injected; a firing
interval overlapping a spike is a true positive, one overlapping none a false positive.
``recall`` = detected / injected spikes (``missed`` = injected - detected),
``precision`` = true-positive / all intervals, delay = first firing minute - spike start
(0 when an interval already fired). Figures are pooled over seeds; ``per_seed`` holds
each seed's own.

``window_mean_ceiling_recall`` bounds what any rule judging k-minute token totals can
reach without one false alarm on the clean day: a spike counts only if some k-minute
window inside it is above every clean k-minute window of the day. On a trace with idle
minutes, a scaled spike over idle minutes adds (almost) nothing, and no such rule can
tell it from the trace's own bursts. That bound knows the whole day in advance;
``causal_window_mean_ceiling`` is the bound for rules that, like ``alerts.spike``, can
only compare with the past: it fires when a k-minute mean (k = 1 .. ``rate_minutes``) of
tokens **or** of requests is above ``margin`` x the highest such mean of the clean
series' last ``baseline_minutes`` (a baseline no spike ever entered: optimistic), with
``margin`` the least one that keeps every seed's clean day quiet. Its recall and median
delay are the best such a rule can report on these days (see ``_causal_ceiling``).
"""

from __future__ import annotations

import dataclasses
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from alerts.spike import SpikeSettings, spike_intervals
from inference.trace import TraceRequest, load_trace

__all__ = ["run_alert_benchmark", "tokens_per_minute"]

Tiling = Literal["rotate", "shuffle"]
Injection = Literal["surge", "scale"]
Workload = Literal["trace", "daily"]

_START = datetime(2023, 11, 16, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
# Spikes this far apart keep one spike's firing tail from merging into the next one.
_SPACING_MINUTES = 30
# Generated days swing from 0.3x to 1.7x the trace's mean rate (peak 5.7x the trough).
_DAILY_AMPLITUDE = 0.7


def tokens_per_minute(requests: list[TraceRequest]) -> np.ndarray:
    """Prompt + generated tokens per whole minute of the trace (a partial last minute dropped)."""
    return _per_minute(requests)[0]


def _per_minute(requests: list[TraceRequest]) -> np.ndarray:
    """Rows (tokens, requests) per whole minute of the trace (a partial last minute dropped)."""
    end = max(r.offset_s for r in requests)
    minutes = np.zeros((2, int(end // 60) + 1))
    for r in requests:
        minutes[0, int(r.offset_s // 60)] += r.prompt_tokens + r.generated_tokens
        minutes[1, int(r.offset_s // 60)] += 1
    return minutes[:, :-1] if end % 60 < 59 and minutes.shape[1] > 1 else minutes


def run_alert_benchmark(
    trace_path: str | None,
    seed: int = 7,
    spikes: int = 20,
    spike_factor: float = 3.0,
    spike_minutes: int = 5,
    settings: SpikeSettings | None = None,
    seeds: int = 10,
    hours: int = 24,
    tiling: Tiling = "rotate",
    injection: Injection = "scale",
    workload: Workload = "trace",
) -> dict[str, Any]:
    """Score the spike rule on ``seeds`` replayed days (seeds ``seed``, ``seed + 1``, ...)."""
    settings = settings or SpikeSettings()
    requests = load_trace(trace_path)
    base = _per_minute(requests)
    sizes = np.array([r.prompt_tokens + r.generated_tokens for r in requests], dtype=float)
    runs = []
    for s in range(seed, seed + seeds):
        rng = np.random.default_rng(s)
        if workload == "daily":
            clean = _daily_cycle(sizes, base[1].mean(), rng, hours * 60)
        else:
            clean = _long_series(base, rng, hours * 60, tiling)
        runs.append(_one_seed(clean, rng, s, spikes, spike_factor, spike_minutes, settings, injection))
    intervals = sum(r["intervals"] for r in runs)
    delays = [d for r in runs for d in r.pop("delays")]
    return {
        "precision": sum(r["true_positive_intervals"] for r in runs) / intervals if intervals else 1.0,
        "recall": sum(r["detected"] for r in runs) / sum(r["injected"] for r in runs),
        "median_detection_delay_seconds": statistics.median(delays) if delays else None,
        "alerts_without_injection": sum(r["alerts_without_injection"] for r in runs),
        "missed": sum(r["injected"] - r["detected"] for r in runs),
        # Upper bound for rules that judge k-minute totals with no false alarm (see _ceiling).
        "window_mean_ceiling_recall": {
            key: statistics.mean(r["window_mean_ceiling"][key] for r in runs)
            for key in ("within_2_minutes", "within_3_minutes", "whole_spike")
        },
        "causal_window_mean_ceiling": _causal_ceiling([r.pop("past_highest_ratios") for r in runs]),
        "method": _method(len(base[0]), hours, tiling, workload)
        + f"; {spikes} spikes ({injection}) x{spike_factor} for {spike_minutes} min per seed, {seeds} seeds",
        "settings": dataclasses.asdict(settings),
        "per_seed": runs,
    }


def _method(trace_minutes: int, hours: int, tiling: Tiling, workload: Workload) -> str:
    if workload == "daily":
        return (
            f"{hours} h generated with a daily cycle (Poisson arrivals, the trace's mean rate x "
            f"(1 + {_DAILY_AMPLITUDE} sin), a random phase per seed; request sizes drawn from the trace)"
        )
    how = "rotated by a random offset" if tiling == "rotate" else "with its minutes shuffled"
    method = f"{hours} h of tokens/minute from copies of the {trace_minutes}-minute trace, each copy {how}"
    # Up to an hour short still counts as the day: a day's trace loses its partial last
    # minute, and a trace within an hour of the day repeats less than an hour of itself.
    if trace_minutes < hours * 60 - 60:
        # Measured on a bursty generated shape: its one hour tiled gave 2 clean-day alerts
        # in 10 days, a whole generated day of it 1-6 a day (README, the spike rule).
        method += (
            " (shorter than the day: its minutes come back in every copy and copies meet at"
            " seams, so clean-day alerts judge the tiling more than the traffic; a trace of"
            f" {hours} h or more judges the traffic itself)"
        )
    return method


def _one_seed(
    clean: np.ndarray,
    rng: np.random.Generator,
    seed: int,
    spikes: int,
    factor: float,
    length: int,
    settings: SpikeSettings,
    injection: Injection,
) -> dict[str, Any]:
    starts = _spike_starts(rng, clean.shape[1], spikes, length, settings.baseline_minutes)
    spiked = _inject(clean, starts, length, factor, injection)
    fired = [_minutes(i) for i in _intervals(spiked, settings)]
    hits = [[i for i in fired if i[0] <= s + length - 1 and i[1] >= s] for s in starts]
    delays = [60.0 * max(0, min(i[0] for i in h) - s) for h, s in zip(hits, starts, strict=True) if h]
    true_positive = sum(1 for i in fired if any(i[0] <= s + length - 1 and i[1] >= s for s in starts))
    return {
        "seed": seed,
        "injected": len(starts),
        "detected": len(delays),
        "intervals": len(fired),
        "true_positive_intervals": true_positive,
        "alerts_without_injection": len(_intervals(clean, settings)),
        "median_detection_delay_seconds": statistics.median(delays) if delays else None,
        "window_mean_ceiling": _ceiling(clean[0], spiked[0], starts, length),
        "past_highest_ratios": _past_highest_ratios(clean, spiked, starts, length, settings),
        "missed_spike_minutes": [s for h, s in zip(hits, starts, strict=True) if not h],
        "delays": delays,
    }


def _inject(
    clean: np.ndarray, starts: list[int], length: int, factor: float, injection: Injection
) -> np.ndarray:
    """``scale`` multiplies the tokens of each spike's minutes by ``factor`` (a prompt bug:
    every request grows, their number does not); ``surge`` adds (factor - 1) x the day's
    mean minute on top, tokens and requests alike (extra traffic of the usual size: the
    spike runs at about factor x the normal volume, even over idle minutes)."""
    spiked = clean.copy()
    extra = (factor - 1) * clean.mean(axis=1)
    for start in starts:
        if injection == "surge":
            spiked[:, start : start + length] += extra[:, None]
        else:
            spiked[0, start : start + length] *= factor
    return spiked


def _ceiling(clean: np.ndarray, spiked: np.ndarray, starts: list[int], length: int) -> dict[str, float]:
    """The share of spikes that any rule judging k-minute means could catch without a single
    false alarm on the clean day: some window of k minutes inside the spike must be above
    every clean k-minute window. ``within_2_minutes`` keeps windows ending by the second
    spike minute (a 60 s delay), ``within_3_minutes`` by the third (120 s); ``whole_spike``
    allows all of it."""
    caught = {"within_2_minutes": 0, "within_3_minutes": 0, "whole_spike": 0}
    for start in starts:
        best_end = None
        for k in range(1, length + 1):
            highest_clean = float(np.convolve(clean, np.ones(k), "valid").max())
            sums = np.convolve(spiked[start : start + length], np.ones(k), "valid")
            above = np.nonzero(sums > highest_clean)[0]
            if above.size:
                end = int(above[0]) + k - 1  # spike minute at which that window closes
                best_end = end if best_end is None else min(best_end, end)
        if best_end is not None:
            caught["whole_spike"] += 1
            caught["within_2_minutes"] += best_end <= 1
            caught["within_3_minutes"] += best_end <= 2
    return {name: count / len(starts) for name, count in caught.items()}


def _past_highest_ratios(
    clean: np.ndarray, spiked: np.ndarray, starts: list[int], length: int, settings: SpikeSettings
) -> dict[str, Any]:
    """Per minute, the largest ratio over k = 1 .. ``rate_minutes`` and over tokens and
    requests of the k-minute mean ending then to the highest k-minute mean of the clean
    series' last ``baseline_minutes``: the clean day's largest (``clean``), and each
    spike's minute by minute (``spikes``). Minutes before a full baseline are not judged."""
    span = settings.baseline_minutes
    clean_ratio = np.zeros(clean.shape[1])
    spiked_ratio = np.zeros(clean.shape[1])
    for row in range(clean.shape[0]):
        for k in range(1, settings.rate_minutes + 1):
            clean_means, spiked_means = _window_means(clean[row], k), _window_means(spiked[row], k)
            # Past windows of minute t start in [t - span, t - k] (the last ends at t - 1).
            highest = np.lib.stride_tricks.sliding_window_view(clean_means, span - k + 1).max(axis=1)
            minutes = np.arange(span, clean.shape[1])
            past = highest[minutes - span]
            for ratio, means in ((clean_ratio, clean_means), (spiked_ratio, spiked_means)):
                current = means[minutes - k + 1]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio[minutes] = np.maximum(ratio[minutes], np.where(current > 0, current / past, 0.0))
    return {
        "clean": float(clean_ratio.max()),
        "spikes": [spiked_ratio[start : start + length].tolist() for start in starts],
    }


def _causal_ceiling(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The best a rule comparing k-minute means with the highest of its past can report
    without a clean-day alarm: at the least margin above every clean day's largest ratio,
    a spike is caught at its first minute whose ratio exceeds that margin."""
    margin = max(seed["clean"] for seed in per_seed)
    delays = []
    for seed in per_seed:
        for ratios in seed["spikes"]:
            above = [minute for minute, ratio in enumerate(ratios) if ratio > margin]
            if above:
                delays.append(60.0 * above[0])
    spikes = sum(len(seed["spikes"]) for seed in per_seed)
    return {
        "margin": margin,
        "recall": len(delays) / spikes,
        "median_detection_delay_seconds": statistics.median(delays) if delays else None,
    }


def _window_means(values: np.ndarray, k: int) -> np.ndarray:
    """The mean of every k consecutive values (index: the window's first value)."""
    sums = np.cumsum(np.concatenate(([0.0], values)))
    return (sums[k:] - sums[:-k]) / k


def _long_series(base: np.ndarray, rng: np.random.Generator, minutes: int, tiling: Tiling) -> np.ndarray:
    copies = []
    for _ in range(-(-minutes // base.shape[1])):
        if tiling == "rotate":
            copies.append(np.roll(base, int(rng.integers(base.shape[1])), axis=1))
        else:
            copies.append(base[:, rng.permutation(base.shape[1])])
    return np.concatenate(copies, axis=1)[:, :minutes]


def _daily_cycle(
    sizes: np.ndarray, mean_requests: float, rng: np.random.Generator, minutes: int
) -> np.ndarray:
    """(tokens, requests) per minute of generated days: Poisson arrivals at the trace's mean
    rate following a daily sine (peak/trough 1.7/0.3), each request's size one of the trace's."""
    phase = rng.uniform(0, 2 * np.pi)
    rate = mean_requests * (1 + _DAILY_AMPLITUDE * np.sin(2 * np.pi * np.arange(minutes) / 1440 + phase))
    counts = rng.poisson(rate)
    minute_of = np.repeat(np.arange(minutes), counts)
    tokens = np.bincount(minute_of, weights=rng.choice(sizes, minute_of.size), minlength=minutes)
    return np.vstack([tokens, counts.astype(float)])


def _spike_starts(rng: np.random.Generator, size: int, count: int, length: int, warm_up: int) -> list[int]:
    """``count`` spike starts after the warm-up, spaced apart; rejection sampling, bounded."""
    starts: list[int] = []
    for _ in range(count * 1000):
        if len(starts) == count:
            break
        start = int(rng.integers(warm_up, size - length))
        if all(abs(start - s) >= length + _SPACING_MINUTES for s in starts):
            starts.append(start)
    if len(starts) < count:
        raise ValueError(f"cannot place {count} spikes of {length} min in a {size}-minute series")
    return sorted(starts)


def _intervals(values: np.ndarray, settings: SpikeSettings) -> list[tuple[datetime, datetime]]:
    """The rule's firing intervals on (tokens, requests) per minute from ``_START``."""
    times = [_START + i * _MINUTE for i in range(values.shape[1])]
    tokens = list(zip(times, values[0].tolist(), strict=True))
    requests = list(zip(times, values[1].tolist(), strict=True))
    return spike_intervals(tokens, settings, requests=requests)


def _minutes(interval: tuple[datetime, datetime]) -> tuple[int, int]:
    return (interval[0] - _START) // _MINUTE, (interval[1] - _START) // _MINUTE
