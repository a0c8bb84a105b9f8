"""``PrometheusSource``: read the vocabulary out of a Prometheus server with PromQL.

The PromQL comes from the same dialect rows as the scrape normalizer
(``collector.dialects``), so a dialect is declared once:

- gauge: ``sum(x{sel})`` or ``avg(x{sel})`` (utilization), times the unit scale;
- counter: ``sum(rate(x{sel}[w]))``;
- histogram: ``histogram_quantile(q, sum by (le) (rate(x_bucket{sel}[w])))``;
- alternatives (``Field`` rows in preference order) are joined with ``or``.

Counters are also counted exactly (``Mapping.increase``: tokens, requests, ready
replica-seconds): ``fetch`` reads each counter series' raw value at ``end`` and keeps
the increase since its previous read (a value below it is a restart from zero; a series
that appeared since the last read started at zero), summed over the endpoint's series.
A series gone for over an hour is forgotten: if it came back with its old total, that
total would be counted again (a new process is what a new series almost always is).
The baselines survive a restart of the collector (``counter_state``/``restore``).
``fetch_range`` gives rates only.

``fetch(start, end)`` runs instant queries at ``end`` with ``w`` = ``end - start``;
``fetch_range(start, end, step)`` runs range queries every ``step`` with ``w`` = ``step``.
Either ``w`` is widened to at least four scrape intervals of the endpoint's series (as
Grafana's ``$__rate_interval``): ``rate()`` needs two samples inside its window, so a
15 s window over a 15 s or 1 min scrape interval is empty most of the time. The interval
is learned from Prometheus itself: the ``job``/``instance`` pairs the endpoint's selector
matches, looked up in ``/api/v1/targets`` (their ``scrapeInterval``); with no match, the
largest interval of any active target; where the API does not answer (some managed
Prometheus-compatible services), Prometheus' default of 1 min. A learned interval is kept
for the source's lifetime; ``scrape_interval_s`` sets it instead. Figures are
endpoint-level (replica ""). An empty result gives no sample (never a zero), NaN results
are dropped; each is logged once per endpoint and metric, naming the source.

Each query has a timeout; connection errors, timeouts, 5xx and 429 answers are retried
with exponential backoff (tenacity), ``retries`` attempts in all. An endpoint whose
queries still fail lands in ``last_errors`` (the collector records a gap for it alone) and
the other endpoints are still read; when every endpoint fails, ``fetch`` raises
``SourceError`` naming the source.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from collector.dialects import QUANTILES, Field, Mapping, get_dialect
from collector.normalize import CounterState, counter_increase
from collector.samples import Sample, SourceError

__all__ = ["PromEndpoint", "PrometheusSource", "parse_duration", "promql"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromEndpoint:
    """One endpoint's series in Prometheus: label matchers such as ``job="llm"``
    (braces optional) and the dialect its series speak."""

    endpoint: str
    selector: str
    dialect: str = "inferplane"

    def matchers(self) -> str:
        return self.selector.strip().removeprefix("{").removesuffix("}")


def _series(f: Field, suffix: str, sel: str) -> str:
    return f"{f.name}{suffix}{{{sel}}}"


def _scaled(expr: str, scale: float) -> str:
    return expr if scale == 1.0 else f"({expr}) * {scale!r}"


def promql(mapping: Mapping, selector: str, window: str) -> dict[str, str]:
    """Vocabulary name -> PromQL for one dialect row, one selector and one rate window."""
    out: dict[str, str] = {}
    # Increases are not PromQL: the source counts them from raw values (``counted``).
    names = [n for n in mapping.vocabulary_names() if n != mapping.increase]
    for name in names:
        parts = []
        for f in mapping.fields:
            if mapping.kind == "gauge":
                agg = "avg" if mapping.aggregate == "mean" else "sum"
                expr = f"{agg}({_series(f, '', selector)})"
            elif mapping.kind == "counter":
                expr = f"sum(rate({_series(f, '', selector)}[{window}]))"
            else:
                q = QUANTILES[name.rsplit("_", 1)[1]]
                buckets = f"sum by (le) (rate({_series(f, '_bucket', selector)}[{window}]))"
                expr = f"histogram_quantile({q}, {buckets})"
            parts.append(_scaled(expr, f.scale))
        out[name] = " or ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]
    return out


def _window(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


# Prometheus' own default global scrape_interval, assumed where it cannot be learned.
_DEFAULT_SCRAPE_INTERVAL_S = 60.0
# A counter series not seen for this long is forgotten (state stays bounded).
_FORGET_AFTER_S = 3600.0
# Scrapes a rate window spans at least (Grafana's $__rate_interval uses the same four).
_SCRAPES_PER_WINDOW = 4
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * _DURATION_S[unit] for number, unit in parts)


class PrometheusSource:
    """A ``MetricSource`` that asks a Prometheus server for each endpoint's figures."""

    def __init__(
        self,
        name: str,
        url: str,
        endpoints: list[PromEndpoint],
        timeout_s: float = 10,
        retries: int = 3,
        backoff_s: float = 0.5,
        headers: dict[str, str] | None = None,
        scrape_interval_s: float | None = None,
    ) -> None:
        for endpoint in endpoints:
            get_dialect(endpoint.dialect)  # an unknown dialect is a config error, raised now
        self.name = name
        self.url = url
        self.endpoints = list(endpoints)
        self.retries = max(1, retries)
        self._backoff_s = backoff_s
        self._sleep: Callable[[float], None] = time.sleep
        self.last_errors: dict[PromEndpoint, str] = {}
        self._noted: set[tuple[str, str, str]] = set()
        self._scrape_interval_s = scrape_interval_s
        self._intervals: dict[PromEndpoint, float] = {}
        self._counters = CounterState()
        self._counted: set[str] = set()  # endpoints whose counters were read before
        # Retries are tenacity's (in _call), so the HTTP client itself never retries.
        no_retry = Retry(total=0, raise_on_status=False)
        self._prom = PrometheusConnect(url=url, headers=headers, retry=no_retry, timeout=timeout_s)  # type: ignore[arg-type]

    def close(self) -> None:
        self._prom.close()

    def queries(self, endpoint: PromEndpoint, window: str) -> dict[str, str]:
        """Vocabulary name -> PromQL for one endpoint (useful to show what is asked)."""
        out: dict[str, str] = {}
        for mapping in get_dialect(endpoint.dialect).mappings:
            out.update(promql(mapping, endpoint.matchers(), window))
        return out

    def rate_window_s(self, endpoint: PromEndpoint, span_s: float) -> float:
        """The rate window for ``endpoint`` over ``span_s``: the span, widened to at least
        four scrape intervals of the endpoint's series."""
        return max(span_s, _SCRAPES_PER_WINDOW * self.scrape_interval_s(endpoint))

    def scrape_interval_s(self, endpoint: PromEndpoint) -> float:
        """How often Prometheus scrapes ``endpoint``'s series (set, learned, or 1 min)."""
        if self._scrape_interval_s is not None:
            return self._scrape_interval_s
        if endpoint in self._intervals:
            return self._intervals[endpoint]
        try:
            matched, interval = self._learn_interval(endpoint)
        except (PrometheusApiClientException, requests.RequestException, ValueError, KeyError) as error:
            self._note_once(endpoint.endpoint, "scrape interval", f"assumed 1m ({error})")
            return _DEFAULT_SCRAPE_INTERVAL_S
        if matched:  # a fallback is asked again next time: the series may appear
            self._intervals[endpoint] = interval
        return interval

    def _learn_interval(self, endpoint: PromEndpoint) -> tuple[bool, float]:
        targets = self._prom.get_targets(state="active")["activeTargets"]
        intervals = {
            (t["labels"].get("job"), t["labels"].get("instance")): parse_duration(t["scrapeInterval"])
            for t in targets
            if "scrapeInterval" in t
        }
        series = self._prom.custom_query(f"group by (job, instance) ({{{endpoint.matchers()}}})")
        mine = [
            intervals[key]
            for s in series
            if (key := (s["metric"].get("job"), s["metric"].get("instance"))) in intervals
        ]
        if mine:
            return True, max(mine)
        return False, max(intervals.values(), default=_DEFAULT_SCRAPE_INTERVAL_S)

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        """Instant figures at ``end``; rates and quantiles over ``[start, end]`` (widened
        to four scrape intervals); counter increases since the last fetch."""
        span_s = (end - start).total_seconds()
        samples = self._each_endpoint(
            span_s,
            lambda q: self._prom.custom_query(q, {"time": end.timestamp()}),
            lambda series: [series.get("value")],
        )
        for ep in self.endpoints:
            if ep not in self.last_errors:
                samples += self._increases(ep, end)
        return samples

    def counter_state(self) -> dict[str, object]:
        """The counter baselines as a JSON document, for ``restore`` after a restart."""
        return {**self._counters.to_json(), "counted": sorted(self._counted)}

    def restore(self, document: dict[str, object]) -> None:
        """Start from saved baselines. Raises ``ValueError`` on a malformed document."""
        self._counters = CounterState.from_json(document)
        self._counted = {str(name) for name in document.get("counted", [])}  # type: ignore[attr-defined]

    def _increases(self, ep: PromEndpoint, end: datetime) -> list[Sample]:
        """Per counter row with an increase name: the sum over the endpoint's series of
        each one's increase since the last fetch (none on the first read of an endpoint)."""
        now = end.timestamp()
        previous = dict(self._counters.readings)
        seen_before = ep.endpoint in self._counted
        samples: list[Sample] = []
        try:
            for mapping in get_dialect(ep.dialect).mappings:
                if mapping.increase is None:
                    continue
                total, found = 0.0, False
                for f in mapping.fields:
                    query = _series(f, "", ep.matchers())
                    result = self._call(query, lambda q=query: self._prom.custom_query(q, {"time": now}))
                    for series in result:
                        labels = tuple(sorted((str(k), str(v)) for k, v in series["metric"].items()))
                        key = (ep.endpoint, "", f.name, labels)
                        value = float(series["value"][1])
                        if not math.isfinite(value):
                            continue
                        before = previous.pop(key, None)
                        previous[key] = (now, value)
                        found = True
                        if before is None:
                            total += value * f.scale if seen_before else 0.0  # appeared: from zero
                        elif now > before[0]:
                            total += counter_increase(before[1], value) * f.scale
                    if found:
                        break  # the first alternative present wins, as in the queries
                if found:
                    samples.append(Sample(end, ep.endpoint, mapping.increase, total))
        except SourceError as error:
            self._note_once(ep.endpoint, "counters", f"not counted this time ({error})")
            return []
        # A series Prometheus stopped returning (a missed scrape makes it stale) keeps its
        # baseline for an hour: back within that, it is not counted again from zero.
        readings = {k: v for k, v in previous.items() if k[0] != ep.endpoint or now - v[0] < _FORGET_AFTER_S}
        self._counters = CounterState(readings, self._counters.since or now)
        self._counted.add(ep.endpoint)
        return samples

    def fetch_range(self, start: datetime, end: datetime, step: timedelta) -> Iterable[Sample]:
        """One sample per ``step`` in ``[start, end]``; rates and quantiles over ``step``
        (widened to four scrape intervals)."""
        step_s = _window(step.total_seconds())
        return self._each_endpoint(
            step.total_seconds(),
            lambda q: self._prom.custom_query_range(q, start, end, step_s),
            lambda series: series.get("values", []),
        )

    def _each_endpoint(
        self, span_s: float, run: Callable[[str], Any], points: Callable[[dict[str, Any]], list[Any]]
    ) -> list[Sample]:
        samples: list[Sample] = []
        errors: dict[PromEndpoint, str] = {}
        for ep in self.endpoints:
            try:
                window = _window(self.rate_window_s(ep, span_s))
                for metric, query in self.queries(ep, window).items():
                    result = self._call(query, lambda q=query: run(q))
                    found = [
                        s for series in result for s in self._samples(ep.endpoint, metric, points(series))
                    ]
                    if not found:
                        self._note_once(ep.endpoint, metric, "no data (empty result or NaN)")
                    samples.extend(found)
            except SourceError as error:
                errors[ep] = str(error)
        self.last_errors = errors
        if errors and len(errors) == len(self.endpoints):
            raise SourceError(next(iter(errors.values())))
        return samples

    def _note_once(self, endpoint: str, metric: str, what: str) -> None:
        if (endpoint, metric, what) not in self._noted:
            self._noted.add((endpoint, metric, what))
            log.info("source %s: %s for %s of endpoint %s", self.name, what, metric, endpoint)

    def _call(self, query: str, run: Any) -> list[dict[str, Any]]:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self._backoff_s, max=10),
            retry=retry_if_exception(_transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return list(retrying(run))
        except (PrometheusApiClientException, requests.RequestException, ValueError) as error:
            raise SourceError(
                f"source {self.name!r}: Prometheus {self.url} failed on {query!r}: {error}"
            ) from error

    @staticmethod
    def _samples(endpoint: str, metric: str, points: list[Any]) -> list[Sample]:
        out = []
        for point in points:
            if not point:
                continue
            value = float(point[1])
            if math.isfinite(value):  # NaN: no request in the window, no figure
                out.append(Sample(datetime.fromtimestamp(float(point[0]), UTC), endpoint, metric, value))
        return out


def _transient(error: BaseException) -> bool:
    """Worth another attempt: the network, a timeout, or a 5xx/429 answer."""
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return True
    text = str(error)
    return isinstance(error, PrometheusApiClientException) and (
        text.startswith("HTTP Status Code 5") or text.startswith("HTTP Status Code 429")
    )
