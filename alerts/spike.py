"""The token-spike rule: tokens per minute far above their own robust baseline.

Pure: the series and ``now`` come in, a ``SpikeFinding`` (or ``None``) goes out; nothing
here reads the clock or does I/O::

    finding = detect_spike(series, now, SpikeSettings(factor=3.0, for_minutes=2))
    if finding:
        ...  # finding.since, finding.rate_per_minute, finding.baseline_per_minute, finding.ratio

How it decides, minute by minute (``_walk``):

* **rate** is the mean of the last ``rate_minutes`` known minutes (a short smoothing, so
  one quiet minute inside a spike of a bursty workload does not end it, and one busy
  minute alone rarely starts one);
* **baseline** is the median of the rate over the last ``baseline_minutes`` known minutes
  (the same statistic, so its MAD is the rate's own noise); once a week of history
  exists and ``weekly`` is set, it is the larger of that and the median of the same
  clock hour of the week in earlier weeks (so a daily or weekly peak is its own normal);
* **threshold** is the largest of ``floor_per_minute``, ``factor`` x baseline and
  baseline + ``mad_k`` x 1.4826 x MAD (the MAD band keeps a noisy baseline from firing on
  its own noise);
* when the rate first crosses the threshold the baseline is **frozen** and a run starts;
  the run fires once ``for_minutes`` known minutes in a row were above, and keeps firing
  while they stay above, judged against that frozen baseline, so a long spike never lifts
  its own baseline. After the run ends its minutes do join the sample: dropping fired
  minutes for good was tried and ran away on bursty traffic (every false alarm removed
  high minutes, lowered the baseline, and caused the next alarm).
* **gaps** (missing or non-finite minutes) are unknown: they neither extend nor break a
  run; a gap longer than ``max_gap_minutes`` ends the run, one longer than
  ``baseline_minutes`` also forgets the baseline (it is stale).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

__all__ = ["SpikeFinding", "SpikeSettings", "detect_spike", "spike_intervals"]

_MINUTE = timedelta(minutes=1)
_WEEK_MINUTES = 7 * 24 * 60
# MAD x 1.4826 estimates the standard deviation for normal data; the usual robust scale.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class SpikeSettings:
    """How far above normal, for how long, counts as a token spike."""

    factor: float = 3.0
    """The rate must exceed ``factor`` x baseline."""
    floor_per_minute: float = 1000.0
    """Never fire below this many tokens per minute, whatever the baseline."""
    for_minutes: int = 1
    """Known minutes in a row the rate must stay above the threshold before firing. The
    default 1 with ``rate_minutes=3`` means "the 3-minute mean is above": on the bursty
    benchmark trace that detects more spikes, sooner, than 2-of-2 on a 2-minute mean."""
    baseline_minutes: int = 60
    """How many recent (non-spike, known) minutes the rolling median baseline uses."""
    weekly: bool = True
    """With a week of history, also use the median of the same hour of the week."""
    rate_minutes: int = 3
    """The rate is the mean of this many last known minutes (1: the raw minute)."""
    mad_k: float = 3.0
    """The rate must also exceed baseline + mad_k x 1.4826 x MAD (0 turns the band off)."""
    min_baseline_minutes: int = 30
    """Known minutes needed before there is a baseline at all (no baseline: never fires)."""
    max_gap_minutes: int = 15
    """A gap longer than this ends a run: the rate cannot be said to have stayed above."""

    def __post_init__(self) -> None:
        errors = []
        for name in ("for_minutes", "baseline_minutes", "rate_minutes", "min_baseline_minutes"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.factor) and self.factor > 1):
            errors.append(f"factor must be a finite number above 1, got {self.factor}")
        if not (math.isfinite(self.floor_per_minute) and self.floor_per_minute >= 0):
            errors.append(f"floor_per_minute must be finite and not negative, got {self.floor_per_minute}")
        if not (math.isfinite(self.mad_k) and self.mad_k >= 0):
            errors.append(f"mad_k must be finite and not negative, got {self.mad_k}")
        if self.min_baseline_minutes > self.baseline_minutes:
            errors.append(
                f"min_baseline_minutes ({self.min_baseline_minutes}) must not exceed "
                f"baseline_minutes ({self.baseline_minutes})"
            )
        if self.max_gap_minutes < 0:
            errors.append(f"max_gap_minutes must not be negative, got {self.max_gap_minutes}")
        if errors:
            raise ValueError("invalid SpikeSettings: " + "; ".join(errors))


@dataclass(frozen=True)
class SpikeFinding:
    """A firing spike: since when, the current rate, the frozen baseline and their ratio."""

    since: datetime
    rate_per_minute: float
    baseline_per_minute: float
    ratio: float
    """rate / baseline; ``inf`` when the baseline is 0 (the floor alone fired it)."""


@dataclass
class _Run:
    """A run of above-threshold minutes: when it started, its frozen baseline and threshold."""

    since: datetime
    baseline: float
    threshold: float
    above: int = 0


def detect_spike(
    series: Sequence[tuple[datetime, float]], now: datetime, settings: SpikeSettings
) -> SpikeFinding | None:
    """The spike firing at ``now``, or None.

    ``series`` is tokens per minute, one (timezone-aware) point per minute, oldest first;
    points after ``now`` are ignored and missing minutes are unknown, never zero. The
    whole history is walked so the answer equals what ``spike_intervals`` reports.
    """
    finding = None
    for at, current in _walk([point for point in series if point[0] <= now], settings):
        finding = current if now - at < _MINUTE else None
    return finding


def spike_intervals(
    series: Sequence[tuple[datetime, float]], settings: SpikeSettings
) -> list[tuple[datetime, datetime]]:
    """The (first, last) firing minutes of every interval during which the rule fires."""
    intervals: list[tuple[datetime, datetime]] = []
    start: datetime | None = None
    last: datetime | None = None
    for at, finding in _walk(series, settings):
        if finding is not None and start is None:
            start = at
        elif finding is None and start is not None and last is not None:
            intervals.append((start, last))
            start = None
        last = at
    if start is not None and last is not None:
        intervals.append((start, last))
    return intervals


def _grid(series: Sequence[tuple[datetime, float]]) -> tuple[datetime, np.ndarray]:
    """The series on a regular minute grid from its first point; NaN marks unknown minutes."""
    start = series[0][0]
    size = int((series[-1][0] - start) / _MINUTE) + 1
    values = np.full(size, np.nan)
    for at, tokens in series:
        if at.tzinfo is None:
            raise ValueError(f"series timestamps must be timezone-aware, got {at.isoformat()}")
        index = round((at - start) / _MINUTE)
        values[index] = tokens if math.isfinite(tokens) and tokens >= 0 else np.nan
    return start, values


def _walk(
    series: Sequence[tuple[datetime, float]], settings: SpikeSettings
) -> Iterator[tuple[datetime, SpikeFinding | None]]:
    """Yield, for every known minute, the finding firing then (None when quiet)."""
    if not series:
        return
    start, values = _grid(series)
    recent: deque[float] = deque(maxlen=settings.baseline_minutes)
    window: deque[float] = deque(maxlen=settings.rate_minutes)
    run: _Run | None = None
    last_known = -1
    for index, value in enumerate(values):
        if math.isnan(value):
            continue
        gap, last_known = index - last_known - 1, index
        if gap > settings.max_gap_minutes:
            run = None
        if gap > settings.baseline_minutes:
            recent.clear()
            window.clear()
        window.append(value)
        rate = sum(window) / len(window)
        at = start + index * _MINUTE
        if run is None:
            run = _open(at, rate, recent, values, index, start, settings)
        elif rate > run.threshold:
            run.above += 1
        else:
            run = None
        # Every minute joins the baseline sample, but a run judges against the baseline
        # frozen at its start, so a spike never lifts its own baseline while it lasts.
        recent.append(rate)
        yield at, _finding(run, rate, settings)


def _open(
    at: datetime,
    rate: float,
    recent: deque[float],
    values: np.ndarray,
    index: int,
    start: datetime,
    settings: SpikeSettings,
) -> _Run | None:
    """A new run when the rate crosses the current threshold (baseline frozen from here)."""
    if len(recent) < settings.min_baseline_minutes or rate <= settings.floor_per_minute:
        return None  # the threshold is never below the floor: no need to compute it
    # statistics.median, not numpy's: on ~60 values numpy's call overhead is ten times the
    # sort, and this runs for every quiet minute of a week of history.
    baseline = statistics.median(recent)
    spread = _MAD_TO_SIGMA * statistics.median([abs(value - baseline) for value in recent])
    if settings.weekly:
        baseline = max(baseline, _weekly_baseline(values, index, start + index * _MINUTE))
    threshold = max(settings.floor_per_minute, settings.factor * baseline, baseline + settings.mad_k * spread)
    return _Run(at, baseline, threshold, above=1) if rate > threshold else None


def _weekly_baseline(values: np.ndarray, index: int, at: datetime) -> float:
    """Median of the same clock hour in every earlier week (0 when there is no full week yet).

    Spike minutes are not removed here: the median of a whole hour shrugs off a spike that
    covered less than half of it, and removing fired minutes would make a daily peak that
    fired during the first week erase itself from its own weekly baseline.
    """
    if index < _WEEK_MINUTES:
        return 0.0
    hour_start = index - (at.minute)
    pieces = [
        values[max(0, begin) : begin + 60] for begin in range(hour_start - _WEEK_MINUTES, -60, -_WEEK_MINUTES)
    ]
    known = np.concatenate(pieces)
    known = known[~np.isnan(known)]
    # Fewer than half an hour known is too thin to stand for "this hour of the week".
    return float(np.median(known)) if known.size >= 30 else 0.0


def _finding(run: _Run | None, rate: float, settings: SpikeSettings) -> SpikeFinding | None:
    if run is None or run.above < settings.for_minutes:
        return None
    ratio = rate / run.baseline if run.baseline > 0 else math.inf
    return SpikeFinding(run.since, rate, run.baseline, ratio)
