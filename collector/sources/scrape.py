"""``ScrapeSource``: read ``/metrics`` of each target directly and normalize it.

Each target is fetched with retries (exponential backoff on transport errors and 5xx
answers) and normalized with its dialect; counter state is kept between fetches (and,
through ``counter_state``/``restore``, across restarts of the collector), so the first
fetch gives gauges only and rates and increases start from the second, except for
counters created since the source began watching (a replica started since), which
count from zero. One failing target never
stops the others: its message lands in ``last_errors`` and the fetch returns the rest.
Only when every target fails does ``fetch`` raise ``SourceError``. Each distinct failure
of a target is logged once (and its recovery once), not on every cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from collector.dialects import get_dialect
from collector.normalize import CounterState, normalize
from collector.samples import Sample, SourceError

__all__ = ["ScrapeSource", "ScrapeTarget"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScrapeTarget:
    """One metrics endpoint. ``url`` without a path gets ``/metrics`` appended;
    ``replica`` set here overrides whatever the series' labels say."""

    endpoint: str
    url: str
    replica: str = ""
    dialect: str = "inferplane"

    def metrics_url(self) -> str:
        return self.url.rstrip("/") + "/metrics" if urlsplit(self.url).path in ("", "/") else self.url


class _ServerError(Exception):
    """A 5xx answer: worth retrying, like a transport error."""


class ScrapeSource:
    """A ``MetricSource`` that scrapes Prometheus exposition text from each target.

    It reads what the targets say now, never the past: time it was not running is a gap."""

    live = True

    def __init__(
        self,
        name: str,
        targets: list[ScrapeTarget],
        timeout_s: float = 10,
        retries: int = 3,
        client: httpx.Client | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        for target in targets:
            get_dialect(target.dialect)  # an unknown dialect is a config error, raised now
        self.name = name
        self.targets = list(targets)
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self.last_errors: dict[ScrapeTarget, str] = {}
        self.non_finite_total = 0
        self._client = client or httpx.Client(timeout=timeout_s)
        self._timeout_s = timeout_s
        self._state = CounterState()
        self._logged: dict[ScrapeTarget, str] = {}
        self._noted: set[tuple[ScrapeTarget, str]] = set()

    def close(self) -> None:
        self._client.close()

    def counter_state(self) -> dict[str, object]:
        """The counter baselines as a JSON document, for ``restore`` after a restart."""
        return self._state.to_json()

    def restore(self, document: dict[str, object]) -> None:
        """Start from saved baselines: the first fetch then counts what the targets served
        while the collector was down. Raises ``ValueError`` on a malformed document."""
        self._state = CounterState.from_json(document)

    def fetch(self, start: datetime, end: datetime) -> Iterable[Sample]:
        """Samples read now, stamped ``end``; rates are over the time since the last fetch."""
        if self._state.since is None:  # watching begins with the first try, answered or not
            self._state = CounterState(self._state.readings, time.time())
        samples: list[Sample] = []
        errors: dict[ScrapeTarget, str] = {}
        for target in self.targets:
            try:
                samples.extend(self._scrape(target, end))
            except SourceError as error:
                errors[target] = str(error)
        self.last_errors = errors
        self._log_changes(errors)
        if errors and len(errors) == len(self.targets):
            detail = "; ".join(errors.values())
            raise SourceError(f"source {self.name!r}: every target failed: {detail}")
        reported = {s.endpoint for s in samples if s.metric == "ready_replicas"}
        return samples + self._replica_counts(errors, end, reported)

    def _replica_counts(
        self, errors: dict[ScrapeTarget, str], end: datetime, reported: set[str]
    ) -> list[Sample]:
        """Each target is a replica; one that answered its scrape counts as ready.

        This is what prices a self-hosted endpoint (ready replica-seconds) when nothing
        reports replica counts. An endpoint whose router (or orchestrator) reported them
        this time is left to that report: its own target is no replica, and it knows the
        replicas starting and draining too.
        """
        counts: dict[str, list[int]] = {}
        for target in self.targets:
            if target.endpoint in reported:
                continue
            configured_and_ready = counts.setdefault(target.endpoint, [0, 0])
            configured_and_ready[0] += 1
            configured_and_ready[1] += target not in errors
        return [
            Sample(end, endpoint, metric, float(value))
            for endpoint, (configured, ready) in counts.items()
            for metric, value in (("replicas", configured), ("ready_replicas", ready))
        ]

    def _scrape(self, target: ScrapeTarget, end: datetime) -> list[Sample]:
        text = self._get(target)
        # Counter baselines run on this host's clock, the one the targets' _created
        # timestamps are written by (``end`` may come from a clock a test moved).
        result = normalize(
            text,
            observed_at=time.time(),
            endpoint=target.endpoint,
            dialect=target.dialect,
            time=end,
            state=self._state,
            replica=target.replica,
            source=f"source {self.name!r} target {target.metrics_url()}",
        )
        self._state = result.state
        self.non_finite_total += result.non_finite
        if result.non_finite:
            self._note_once(target, "dropped non-finite (NaN or Inf) values")
        if result.counter_resets:
            self._note_once(target, "saw a counter reset (the process restarted); rates restart from zero")
        return result.samples

    def _note_once(self, target: ScrapeTarget, what: str) -> None:
        """Log an odd but handled input once per target, not on every scrape."""
        if (target, what) not in self._noted:
            self._noted.add((target, what))
            log.info("source %r: %s %s", self.name, target.metrics_url(), what)

    def _get(self, target: ScrapeTarget) -> str:
        url = target.metrics_url()
        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.backoff_s, max=10 * self.backoff_s),
            retry=retry_if_exception_type((httpx.TransportError, _ServerError)),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._client.get(url, timeout=self._timeout_s)
                    if response.status_code >= 500:
                        raise _ServerError(f"HTTP {response.status_code}")
        except RetryError as error:
            cause = error.last_attempt.exception()
            raise SourceError(
                f"source {self.name!r}: {url} failed after {self.retries} attempts: {cause!r}"
            ) from cause
        except httpx.HTTPError as error:
            raise SourceError(f"source {self.name!r}: {url}: {error!r}") from error
        if response.status_code != 200:
            raise SourceError(f"source {self.name!r}: {url} answered HTTP {response.status_code}")
        return response.text

    def _log_changes(self, errors: dict[ScrapeTarget, str]) -> None:
        # Once per distinct failure, once per recovery: an outage must not flood the log.
        for target, message in errors.items():
            if self._logged.get(target) != message:
                log.warning("%s", message)
                self._logged[target] = message
        for target in [t for t in self._logged if t not in errors]:
            log.info("source %r: %s recovered", self.name, target.metrics_url())
            del self._logged[target]
