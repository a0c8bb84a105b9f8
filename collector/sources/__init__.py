"""Metric sources: one adapter per module, all registered in ``METRIC_SOURCES``.

Every source implements ``collector.samples.MetricSource``: a ``name`` and
``fetch(start, end) -> Iterable[Sample]`` that returns vocabulary samples or raises
``SourceError`` (naming the source) when it cannot deliver anything at all.

How to add a source
-------------------
1. Write ``collector/sources/<kind>.py`` with one class. Its constructor takes the
   source's name and its settings; ``fetch`` returns ``Sample`` values in the vocabulary
   (``collector.samples.METRICS``), never zeros for missing data.
2. If it reads a new metric dialect, declare the dialect as data in
   ``collector/dialects.py`` (not as code in the source), and reuse
   ``collector.normalize`` for exposition text.
3. Translate the third-party client's errors into ``SourceError`` at the boundary,
   with the original chained (``raise SourceError(...) from error``).
4. Register the class below under its kind and add tests against a real or local
   server answering the documented payloads.
"""

from __future__ import annotations

from collector.sources.prometheus import PromEndpoint, PrometheusSource
from collector.sources.scrape import ScrapeSource, ScrapeTarget

__all__ = [
    "METRIC_SOURCES",
    "PromEndpoint",
    "PrometheusSource",
    "ScrapeSource",
    "ScrapeTarget",
]

# kind (as written in the configuration) -> class.
METRIC_SOURCES: dict[str, type] = {
    "scrape": ScrapeSource,
    "prometheus": PrometheusSource,
}
