"""Prometheus exposition text -> vocabulary samples. Pure: no I/O, no clock.

``normalize(text, endpoint=..., dialect=..., time=..., state=...)`` reads one scrape of
one target and returns a ``Normalized`` (samples, the new ``CounterState``, how many
non-finite values were dropped). The caller keeps the state between scrapes.

How each kind of mapping (``collector.dialects``) is read:

- gauge: value times the unit scale; several series of one replica are summed or
  averaged as the mapping says.
- counter: the increase against the previous reading of the same series (kept in
  ``CounterState``), as a per-second rate and, where the mapping names one, as the
  increase itself (what money and volumes sum). A value below the previous one is a
  counter reset (the process restarted): the increase is the new value, as Prometheus'
  ``increase()`` assumes a restart from zero. A reading not later than the previous one
  gives nothing. The first reading of a series gives nothing either (its start is
  unknown), unless the series says when it was created (``<name>_created``, which
  prometheus_client exports) and that is after this target was last read, or after the
  state began: then it started from zero while we watched, and its whole value is the
  increase. That is how the tokens a new replica serves before its first scrape count,
  and how a restart that served more than before is still seen as one.
- histogram: p50 and p95 of the bucket DELTAS between two readings, interpolating
  linearly inside the bucket the rank falls in (what
  ``histogram_quantile(q, sum by (le) (rate(x_bucket[w])))`` does). No request finished
  in the interval gives no sample: the latency is unknown, not zero.

Non-finite values (NaN, +/-Inf) are dropped and counted. Label names are matched
lower-cased (dcgm-exporter renamed ``Hostname`` to ``hostname``). The replica of a
series is the target's ``replica`` when given, else the first non-empty value of the
dialect's replica labels, else "" (the endpoint as a whole).

Malformed text raises ``SourceError`` naming the source.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from collector.dialects import QUANTILES, Dialect, Field, Mapping, get_dialect
from collector.samples import Sample, SourceError

__all__ = [
    "CounterState",
    "Normalized",
    "bucket_quantile",
    "counter_increase",
    "normalize",
    "parse_exposition",
]

Labels = tuple[tuple[str, str], ...]
# (endpoint, target replica, series name, labels): one cumulative series of one target.
SeriesKey = tuple[str, str, str, Labels]
Parsed = dict[str, list[tuple[Labels, float]]]


@dataclass(frozen=True)
class CounterState:
    """Previous readings of cumulative series: key -> (unix seconds, value); when each
    target was last read and since when this state has watched, by the host's clock (a
    series created later started at zero while we watched)."""

    readings: MappingABC[SeriesKey, tuple[float, float]] = field(default_factory=dict)
    since: float | None = None
    read_at: MappingABC[tuple[str, str], float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A JSON document of this state (``from_json`` reads it back)."""
        rows = [
            [*key[:3], [list(pair) for pair in key[3]], *reading] for key, reading in self.readings.items()
        ]
        read_at = [[endpoint, replica, at] for (endpoint, replica), at in self.read_at.items()]
        return {"since": self.since, "readings": rows, "read_at": read_at}

    @classmethod
    def from_json(cls, document: MappingABC[str, object]) -> CounterState:
        """The state ``to_json`` wrote; raises ``ValueError`` on a malformed document."""
        try:
            readings = {
                (str(e), str(r), str(n), tuple((str(k), str(v)) for k, v in labels)): (float(t), float(x))
                for e, r, n, labels, t, x in document["readings"]  # type: ignore[attr-defined]
            }
            since = document.get("since")
            read_at = {(str(e), str(r)): float(t) for e, r, t in document.get("read_at", [])}  # type: ignore[attr-defined]
            return cls(readings, None if since is None else float(since), read_at)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed counter state: {error}") from error


@dataclass(frozen=True)
class Normalized:
    """What one scrape gave: samples, the state for the next scrape, values dropped."""

    samples: list[Sample]
    state: CounterState
    non_finite: int = 0
    counter_resets: int = 0


def parse_exposition(text: str, source: str) -> tuple[Parsed, int]:
    """Series by sample name (label names lower-cased) and the count of non-finite values."""
    parsed: Parsed = defaultdict(list)
    dropped = 0
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if not math.isfinite(s.value):
                    dropped += 1
                    continue
                labels = tuple(sorted((k.lower(), v) for k, v in s.labels.items()))
                parsed[s.name].append((labels, float(s.value)))
    except (ValueError, IndexError, KeyError, TypeError) as error:
        raise SourceError(f"{source}: malformed Prometheus exposition text: {error}") from error
    return dict(parsed), dropped


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus does.

    Needs a ``+Inf`` bucket; None when it is missing or counts nothing. A rank in the
    ``+Inf`` bucket returns the highest finite bound (there is no upper edge to use)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == math.inf:
                return lower
            if upper <= 0 or count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None  # unreachable: the +Inf bucket holds every observation


def normalize(
    text: str,
    *,
    endpoint: str,
    dialect: Dialect | str,
    time: datetime,
    state: CounterState,
    replica: str = "",
    source: str = "",
    observed_at: float | None = None,
) -> Normalized:
    """Vocabulary samples of one scrape of one target; see the module docstring.

    Samples are stamped ``time``; the counter state runs on ``observed_at`` (unix
    seconds when the text was read, by the host's clock; default ``time``), the clock
    ``_created`` timestamps are written by, even where ``time`` comes from another one
    (a collector whose clock a test moved)."""
    d = get_dialect(dialect) if isinstance(dialect, str) else dialect
    parsed, dropped = parse_exposition(text, source or endpoint)
    wall = time.timestamp() if observed_at is None else observed_at
    since = wall if state.since is None else state.since
    last_read = state.read_at.get((endpoint, replica), since)
    reader = _Reader(endpoint, replica, d, (time.timestamp(), wall, last_read), state.readings)
    samples: list[Sample] = []
    for mapping in d.mappings:
        for (rep, metric), value in reader.read(mapping, parsed).items():
            samples.append(Sample(time, endpoint, metric, value, rep))
    read_at = {**state.read_at, (endpoint, replica): wall}
    return Normalized(samples, CounterState(reader.next_state(), since, read_at), dropped, reader.resets)


class _Reader:
    """Reads mappings out of one parsed scrape; collects the next counter state."""

    def __init__(
        self,
        endpoint: str,
        replica: str,
        dialect: Dialect,
        clocks: tuple[float, float, float],
        previous: MappingABC[SeriesKey, tuple[float, float]],
    ) -> None:
        self._endpoint, self._replica, self._dialect = endpoint, replica, dialect
        # The sample time (rates), and by the host's clock: now and when this target was
        # last read (a series created after that is new since we looked: it began at zero).
        self._now, self._wall, self._last_read = clocks
        self._previous = previous
        self._seen: dict[SeriesKey, tuple[float, float]] = {}
        self.resets = 0

    def next_state(self) -> dict[SeriesKey, tuple[float, float]]:
        # Keep other targets' series; drop this target's series that vanished (bounded state).
        mine = (self._endpoint, self._replica)
        kept = {k: v for k, v in self._previous.items() if k[:2] != mine}
        return {**kept, **self._seen}

    def read(self, mapping: Mapping, parsed: Parsed) -> dict[tuple[str, str], float]:
        chosen = _first_present(mapping, parsed)
        if chosen is None:
            return {}
        if mapping.kind == "gauge":
            return self._gauge(mapping, chosen, parsed[chosen.name])
        if mapping.kind == "counter":
            created = dict(parsed.get(_created_name(chosen.name), []))
            return self._counter(mapping, chosen, parsed[chosen.name], created)
        return self._histogram(mapping, chosen, parsed[chosen.name + "_bucket"])

    def _replica_of(self, labels: Labels) -> str:
        if self._replica:
            return self._replica
        values = dict(labels)
        return next((values[n] for n in self._dialect.replica_labels if values.get(n)), "")

    def _gauge(
        self, m: Mapping, f: Field, series: list[tuple[Labels, float]]
    ) -> dict[tuple[str, str], float]:
        groups: dict[str, list[float]] = defaultdict(list)
        for labels, value in series:
            groups[self._replica_of(labels)].append(value * f.scale)
        combine = (lambda v: sum(v) / len(v)) if m.aggregate == "mean" else sum
        return {(rep, m.metric): combine(values) for rep, values in groups.items()}

    def _delta(
        self, name: str, labels: Labels, value: float, created: float | None = None
    ) -> tuple[float, float] | None:
        """(increase, elapsed seconds) since the previous reading of this series, or None."""
        key = (self._endpoint, self._replica, name, labels)
        self._seen[key] = (self._now, value)
        previous = self._previous.get(key)
        # Born (or born again: a restarted process) since we last looked: it started at zero.
        if created is not None and self._last_read <= created < self._wall:
            return value, max(self._wall - max(created, self._last_read), 1e-3)
        if previous is None or self._now <= previous[0]:
            return None
        if value < previous[1]:
            self.resets += 1
        return counter_increase(previous[1], value), self._now - previous[0]

    def _counter(
        self, m: Mapping, f: Field, series: list[tuple[Labels, float]], created: dict[Labels, float]
    ) -> dict[tuple[str, str], float]:
        rates: dict[str, float] = defaultdict(float)
        increases: dict[str, float] = defaultdict(float)
        for labels, value in series:
            delta = self._delta(f.name, labels, value, created.get(labels))
            if delta is not None:
                rates[self._replica_of(labels)] += delta[0] / delta[1] * f.scale
                increases[self._replica_of(labels)] += delta[0] * f.scale
        out = {} if m.metric == m.increase else {(rep, m.metric): rate for rep, rate in rates.items()}
        if m.increase is not None:
            out.update({(rep, m.increase): increase for rep, increase in increases.items()})
        return out

    def _histogram(
        self, m: Mapping, f: Field, series: list[tuple[Labels, float]]
    ) -> dict[tuple[str, str], float]:
        # sum by (replica, le) of per-series bucket increases: histogram_quantile's input.
        buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for labels, value in series:
            delta = self._delta(f.name + "_bucket", labels, value)
            le = dict(labels).get("le")
            if delta is None or le is None:
                continue
            buckets[self._replica_of(labels)][float(le)] += delta[0]
        out: dict[tuple[str, str], float] = {}
        for rep, by_le in buckets.items():
            for suffix, q in QUANTILES.items():
                quantile = bucket_quantile(q, list(by_le.items()))
                if quantile is not None:
                    out[(rep, f"{m.metric}_{suffix}")] = quantile * f.scale
        return out


def _created_name(counter: str) -> str:
    """``x_total`` (or a histogram's ``x_sum``) -> ``x_created``, as prometheus_client names it."""
    for suffix in ("_total", "_sum", "_count"):
        if counter.endswith(suffix):
            return counter.removesuffix(suffix) + "_created"
    return counter + "_created"


def _first_present(mapping: Mapping, parsed: Parsed) -> Field | None:
    suffix = "_bucket" if mapping.kind == "histogram" else ""
    return next((f for f in mapping.fields if parsed.get(f.name + suffix)), None)


def counter_increase(previous: float, value: float) -> float:
    """How much a counter grew from ``previous`` to ``value``. A counter below its
    previous value was reset (its process restarted) and counted again from zero, so all
    of ``value`` is new: Prometheus' own reset rule, shared by every source that counts."""
    return value if value < previous else value - previous
