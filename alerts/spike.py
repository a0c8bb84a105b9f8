"""The token-spike rule: tokens per minute (or tokens per request) far above their own normal.

Pure: the series and ``now`` come in, a ``SpikeFinding`` (or ``None``) goes out; nothing
here reads the clock or does I/O::

    finding = detect_spike(tokens, now, SpikeSettings(), requests=requests)
    if finding:
        ...  # finding.since, finding.rate_per_minute, finding.baseline_per_minute, finding.ratio

``tokens`` is tokens per minute; ``requests`` (optional) is requests per minute over the
same minutes. Two signals are judged, minute by minute (``_walk``):

* **volume**: for every window of k = 1 .. ``rate_minutes`` last known minutes, the mean
  tokens per minute over that window. A window fires when its mean is above all of
  ``floor_per_minute``, ``factor`` x the median of the same k-minute means over the
  baseline's last ``volume_baseline_minutes`` (an hour), that median + ``mad_k`` x 1.4826 x
  their MAD, and ``margin`` x the **highest** k-minute mean of the whole baseline (three
  hours). The last term is what makes one setting fit both a smooth and a bursty
  workload: a workload whose minutes swing from idle to 6x the median has shown its own
  highest k-minute means in the last three hours, and only what clears them (by
  ``margin``) is new. Several windows at once: one very high minute is caught at once,
  a moderate surge once a few minutes of it add up.
* **size** (with ``requests``): tokens per request of the last minute against the same
  figure over the baseline minutes (``size_factor`` x its median and ``margin`` x its
  highest). A prompt bug or a runaway client that makes every request larger moves this
  at the first minute, even on a workload too bursty for the volume to say anything: a
  tripled idle minute is still idle, but every request of a busy one is three times the
  normal size.

The baseline is the last ``baseline_minutes`` known minutes; once a week of history exists
and ``weekly`` is set, the volume median is the larger of that and the median of the same
clock hour of the week in earlier weeks (so a daily or weekly peak is its own normal).

When a signal first crosses its threshold, every threshold is **frozen** and a run starts;
the run fires once ``for_minutes`` known minutes in a row were above, and keeps firing
while any signal stays above its frozen threshold. Minutes of a run join the baseline
**clipped** to the typical minute (the frozen median, and its median tokens per request),
and so do the earlier minutes of the longest window that opened it (the spike's first
minutes, already in the baseline when a 2- to 5-minute mean opened the run): a real spike
then does not lift the threshold for the next one. A false alarm of the
volume does not lower it either: its minutes were above ``margin`` x the highest baseline
window, so clipping them leaves that highest window where it was before the run (a run
opened by the size alone does clip busy minutes of its own to the typical one; so may
the earlier minutes of the window that opens a false alarm, which lowers the threshold a
little: the bench's clean days stay quiet with it). (Clipping to
the highest minute instead was tried: spikes an hour apart kept re-stamping an old peak
into the baseline, which then hid every surge of a daily cycle's evening.)

**Gaps** (missing or non-finite minutes) are unknown: they neither extend nor break a run;
a gap longer than ``max_gap_minutes`` ends the run, one longer than ``baseline_minutes``
also forgets the baseline (it is stale). A minute with a token reading but no request
reading is judged on volume alone.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

__all__ = ["SpikeFinding", "SpikeSettings", "detect_spike", "spike_intervals"]

Series = Sequence[tuple[datetime, float]]

_MINUTE = timedelta(minutes=1)
_WEEK_MINUTES = 7 * 24 * 60
# MAD x 1.4826 estimates the standard deviation for normal data; the usual robust scale.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class SpikeSettings:
    """How far above normal, for how long, counts as a token spike."""

    factor: float = 2.0
    """A window's mean must exceed ``factor`` x the median of such windows in the baseline."""
    floor_per_minute: float = 1000.0
    """Never fire below this many tokens per minute, whatever the baseline."""
    for_minutes: int = 1
    """Known minutes in a row a signal must stay above its threshold before firing."""
    baseline_minutes: int = 180
    """How many recent known minutes the baseline holds (three hours: long enough that a
    bursty workload has shown its own highest minutes, short enough to follow a day)."""
    weekly: bool = True
    """With a week of history, also use the median of the same hour of the week."""
    rate_minutes: int = 5
    """The longest window: tokens per minute are judged as means of the last 1 .. this many
    known minutes, each window against the same windows of the baseline."""
    mad_k: float = 3.0
    """A window's mean must also exceed median + mad_k x 1.4826 x MAD (0 turns the band off)."""
    margin: float = 1.25
    """... and ``margin`` x the highest such window of the baseline (1 turns it off)."""
    size_factor: float = 2.0
    """Tokens per request must exceed ``size_factor`` x their baseline median and ``margin``
    x their baseline highest (judged only when requests per minute are given)."""
    min_baseline_minutes: int = 30
    """Known minutes needed before there is a baseline at all (no baseline: never fires).
    Tokens per request, a mean over many requests, is judged from then on."""
    volume_baseline_minutes: int = 60
    """Known minutes needed before the volume is judged, and the span of the medians: a
    bursty workload shows its own bursts within an hour, not always within half of one."""
    max_gap_minutes: int = 15
    """A gap longer than this ends a run: the rate cannot be said to have stayed above."""

    def __post_init__(self) -> None:
        errors = []
        for name in (
            "for_minutes",
            "baseline_minutes",
            "rate_minutes",
            "min_baseline_minutes",
            "volume_baseline_minutes",
        ):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("factor", "size_factor"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 1):
                errors.append(f"{name} must be a finite number above 1, got {getattr(self, name)}")
        if not (math.isfinite(self.margin) and self.margin >= 1):
            errors.append(f"margin must be a finite number of at least 1, got {self.margin}")
        if not (math.isfinite(self.floor_per_minute) and self.floor_per_minute >= 0):
            errors.append(f"floor_per_minute must be finite and not negative, got {self.floor_per_minute}")
        if not (math.isfinite(self.mad_k) and self.mad_k >= 0):
            errors.append(f"mad_k must be finite and not negative, got {self.mad_k}")
        for name in ("min_baseline_minutes", "volume_baseline_minutes"):
            if getattr(self, name) > self.baseline_minutes:
                value = getattr(self, name)
                errors.append(f"{name} ({value}) must not exceed baseline_minutes ({self.baseline_minutes})")
        if self.rate_minutes > self.min_baseline_minutes:
            errors.append(
                f"rate_minutes ({self.rate_minutes}) must not exceed "
                f"min_baseline_minutes ({self.min_baseline_minutes})"
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
    """Tokens per minute: the mean of the window furthest above its threshold (the last
    minute when only the size signal fires)."""
    baseline_per_minute: float
    """The baseline median of that window, frozen when the run started."""
    ratio: float
    """rate / baseline; ``inf`` when the baseline is 0 (the floor alone fired it)."""
    tokens_per_request: float | None = None
    """The last minute's tokens per request, when requests were given and it was known."""
    baseline_tokens_per_request: float | None = None
    """The baseline median of tokens per request, frozen when the run started."""


@dataclass(frozen=True)
class _Thresholds:
    """What the baseline looked like when a run started (frozen for the run)."""

    medians: tuple[float, ...]
    """Per window length k (index k - 1): the median k-minute mean."""
    limits: tuple[float, ...]
    """Per window length: the mean it must exceed."""
    size_median: float | None
    size_limit: float | None


@dataclass
class _Run:
    since: datetime
    thresholds: _Thresholds
    above: int = 1


def detect_spike(
    series: Series, now: datetime, settings: SpikeSettings, requests: Series = ()
) -> SpikeFinding | None:
    """The spike firing at ``now``, or None.

    ``series`` is tokens per minute, one (timezone-aware) point per minute, oldest first;
    ``requests`` the requests of the same minutes (optional). Points after ``now`` are
    ignored and missing minutes are unknown, never zero. The whole history is walked so
    the answer equals what ``spike_intervals`` reports.
    """
    finding = None
    mine = [point for point in series if point[0] <= now]
    for at, current in _walk(mine, settings, requests):
        finding = current if now - at < _MINUTE else None
    return finding


def spike_intervals(
    series: Series, settings: SpikeSettings, requests: Series = ()
) -> list[tuple[datetime, datetime]]:
    """The (first, last) firing minutes of every interval during which the rule fires."""
    intervals: list[tuple[datetime, datetime]] = []
    start: datetime | None = None
    last: datetime | None = None
    for at, finding in _walk(series, settings, requests):
        if finding is not None and start is None:
            start = at
        elif finding is None and start is not None and last is not None:
            intervals.append((start, last))
            start = None
        last = at
    if start is not None and last is not None:
        intervals.append((start, last))
    return intervals


def _grid(series: Series, start: datetime, size: int) -> np.ndarray:
    """The series on a regular minute grid from ``start``; NaN marks unknown minutes."""
    values = np.full(size, np.nan)
    for at, value in series:
        if at.tzinfo is None:
            raise ValueError(f"series timestamps must be timezone-aware, got {at.isoformat()}")
        index = round((at - start) / _MINUTE)
        if 0 <= index < size:
            values[index] = value if math.isfinite(value) and value >= 0 else np.nan
    return values


def _walk(
    series: Series, settings: SpikeSettings, requests: Series
) -> Iterator[tuple[datetime, SpikeFinding | None]]:
    """Yield, for every known minute, the finding firing then (None when quiet)."""
    if not series:
        return
    start = series[0][0]
    size = int((series[-1][0] - start) / _MINUTE) + 1
    tokens = _grid(series, start, size)
    counts = _grid(requests, start, size)
    history: deque[tuple[float, float]] = deque(maxlen=settings.baseline_minutes)
    window: deque[float] = deque(maxlen=settings.rate_minutes)
    run: _Run | None = None
    last_known = -1
    for index, value in enumerate(tokens):
        if math.isnan(value):
            continue
        gap, last_known = index - last_known - 1, index
        if gap > settings.max_gap_minutes:
            run = None
        if gap > settings.baseline_minutes:
            history.clear()
            window.clear()
        window.append(value)
        count = float(counts[index])
        at = start + index * _MINUTE
        if run is None:
            if _may_open(window, history, value, count, settings):
                frozen = _thresholds(history, tokens, index, at, settings)
                if frozen is not None and _above(window, value, count, frozen, settings):
                    run = _Run(at, frozen)
                    _clip_opening(history, window, run)
        elif _above(window, value, count, run.thresholds, settings):
            run.above += 1
        else:
            run = None
        history.append(_clipped(value, count, run))
        yield at, _finding(run, window, value, count, settings)


def _may_open(
    window: deque[float],
    history: deque[tuple[float, float]],
    value: float,
    count: float,
    settings: SpikeSettings,
) -> bool:
    """False when no threshold the baseline could set is crossed now, judged from bounds
    that need no statistics: every volume limit is at least the floor and ``margin`` x the
    last k minutes' mean (one of the baseline's k-minute means), the size limit at least
    ``margin`` x the last minute's size. Exact (only minutes that cannot open a run are
    skipped), and it spares the baseline's medians on most quiet minutes: a week of
    history is walked on every evaluation."""
    if len(history) < settings.min_baseline_minutes:
        return False
    current = list(window)
    past = [v for v, _ in itertools.islice(reversed(history), settings.rate_minutes)]  # newest first
    for k in range(1, len(current) + 1):
        mean = sum(current[-k:]) / k
        if mean > settings.floor_per_minute and (len(past) < k or mean > settings.margin * sum(past[:k]) / k):
            return True
    if not count > 0 or value <= settings.floor_per_minute:
        return False  # no size to judge (NaN compares False too)
    last_value, last_count = history[-1]
    return not (last_count > 0 and value / count <= settings.margin * last_value / last_count)


def _clipped(value: float, count: float, run: _Run | None) -> tuple[float, float]:
    """A minute as the baseline keeps it: a run's minutes no higher than what was normal."""
    if run is None:
        return value, count
    frozen = run.thresholds
    value = min(value, frozen.medians[0])
    if frozen.size_median is not None and count > 0:
        value = min(value, count * frozen.size_median)
    return value, count


def _clip_opening(history: deque[tuple[float, float]], window: deque[float], run: _Run) -> None:
    """Clip the earlier minutes of the longest window that opened ``run``, as its own minutes
    are: they are the spike's first minutes, and left in the baseline at their full height
    they would lift the highest windows that the next spike is judged against."""
    recent = list(window)
    limits = run.thresholds.limits
    opened = [k for k in range(1, len(recent) + 1) if sum(recent[-k:]) / k > limits[k - 1]]
    for back in range(1, max(opened, default=1)):
        history[-back] = _clipped(*history[-back], run)


def _window_means(values: np.ndarray, k: int) -> np.ndarray:
    sums = np.cumsum(np.concatenate(([0.0], values)))
    return (sums[k:] - sums[:-k]) / k


def _thresholds(
    history: deque[tuple[float, float]], tokens: np.ndarray, index: int, at: datetime, settings: SpikeSettings
) -> _Thresholds | None:
    """The thresholds the baseline sets now, or None while it is too short."""
    if len(history) < settings.min_baseline_minutes:
        return None
    known = np.array(history)
    values, counts = known[:, 0], known[:, 1]
    weekly = _weekly_baseline(tokens, index, at) if settings.weekly else 0.0
    medians, limits = [], []
    for k in range(1, settings.rate_minutes + 1):
        means = _window_means(values, k)
        # The typical level from the last hour only: over three hours of a daily cycle's
        # rise the median would lag by an hour and a half.
        latest = means[-settings.volume_baseline_minutes :]
        median = float(np.median(latest))
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(latest - median)))
        typical = max(median, weekly)
        medians.append(typical)
        if len(history) < settings.volume_baseline_minutes:
            limits.append(math.inf)
            continue
        limits.append(
            max(
                settings.floor_per_minute,
                settings.factor * typical,
                median + settings.mad_k * spread,
                settings.margin * float(means.max()),
            )
        )
    sizes = values[counts > 0] / counts[counts > 0]  # NaN counts compare False: left out
    size_median = size_limit = None
    if sizes.size >= settings.min_baseline_minutes // 2:
        size_median = float(np.median(sizes))
        size_limit = max(settings.size_factor * size_median, settings.margin * float(sizes.max()))
    return _Thresholds(tuple(medians), tuple(limits), size_median, size_limit)


def _above(
    window: deque[float], value: float, count: float, frozen: _Thresholds, settings: SpikeSettings
) -> bool:
    """Is any window's mean, or the last minute's tokens per request, above its threshold?"""
    return _volume_excess(window, frozen) > 1 or _size_excess(value, count, frozen, settings) > 1


def _volume_excess(window: deque[float], frozen: _Thresholds) -> float:
    """The largest mean / limit over the windows that the last known minutes fill."""
    recent = list(window)
    best = 0.0
    for k in range(1, len(recent) + 1):
        best = max(best, (sum(recent[-k:]) / k) / frozen.limits[k - 1])
    return best


def _size_excess(value: float, count: float, frozen: _Thresholds, settings: SpikeSettings) -> float:
    if frozen.size_limit is None or math.isnan(count) or count <= 0 or value <= settings.floor_per_minute:
        return 0.0
    return (value / count) / frozen.size_limit


def _weekly_baseline(values: np.ndarray, index: int, at: datetime) -> float:
    """Median of the same clock hour in every earlier week (0 when there is no full week yet).

    Spike minutes are not removed here: the median of a whole hour shrugs off a spike that
    covered less than half of it, and removing fired minutes would make a daily peak that
    fired during the first week erase itself from its own weekly baseline.
    """
    if index < _WEEK_MINUTES:
        return 0.0
    hour_start = index - at.minute
    pieces = [
        values[max(0, begin) : begin + 60] for begin in range(hour_start - _WEEK_MINUTES, -60, -_WEEK_MINUTES)
    ]
    known = np.concatenate(pieces)
    known = known[~np.isnan(known)]
    # Fewer than half an hour known is too thin to stand for "this hour of the week".
    return float(np.median(known)) if known.size >= 30 else 0.0


def _finding(
    run: _Run | None, window: deque[float], value: float, count: float, settings: SpikeSettings
) -> SpikeFinding | None:
    if run is None or run.above < settings.for_minutes:
        return None
    frozen = run.thresholds
    recent = list(window)
    # Report the window furthest above its limit (the last minute if only the size fired).
    k = max(range(1, len(recent) + 1), key=lambda k: (sum(recent[-k:]) / k) / frozen.limits[k - 1])
    if _volume_excess(window, frozen) <= 1:
        k = 1
    rate, baseline = sum(recent[-k:]) / k, frozen.medians[k - 1]
    size = value / count if not math.isnan(count) and count > 0 else None
    return SpikeFinding(
        run.since,
        rate,
        baseline,
        rate / baseline if baseline > 0 else math.inf,
        size,
        frozen.size_median,
    )
