"""Billed daily cost from Azure Cost Management (``Query_Usage``), as ``CostRow``s.

The query asks for the actual cost (``type=ActualCost``) of the days ``start..end`` in UTC
with ``granularity=Daily``, summed over ``Cost`` and grouped by ``ResourceId`` and by the tag
``azuremlendpoint`` (``tag_key``; ``azuremldeployment`` works the same way). Azure allows
two groupings per query, so one tag is read, not both. Azure ML online endpoint cost is
billed on the workspace resource with that tag: a row whose tag value names an endpoint goes
to that endpoint (through ``tag_endpoint_map`` when given, else the tag value is the endpoint
name); any other row goes to its resource id.

Answers are read by column name, because they vary by account type and API version: the
cost is ``Cost``, ``PreTaxCost`` (legacy accounts) or ``CostUSD`` (then in USD); the day is
``UsageDate`` as a number like ``20250331`` (without it the row covers the whole range);
the currency comes from ``Currency``. A column outside ``KNOWN_COLUMNS`` (or no cost
column) is a ``SourceError`` naming the columns found, logged once per column set.

Paging: ``query.usage()`` returns only the first page and its ``nextLink``. The service
wants the next page requested with POST and the same body (a GET, or a POST without the
body, is answered "Dataset is invalid or not supplied"), so later pages go through the
client's own pipeline (``send_request``: same credential, policies and transport). The
nextLink's path and query are re-based on ``base_url`` so that the bearer token is only
ever sent to the configured host. ``usage()`` returns ``None`` on HTTP 204: no rows.

Throttling: a 429 is retried after the longest of ``Retry-After`` and the
``x-ms-ratelimit-microsoft.costmanagement-*-retry-after`` headers (capped at
``max_wait_s``), up to ``attempts`` calls per page; the sleep is injectable.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from azure.mgmt.costmanagement import CostManagementClient
from azure.mgmt.costmanagement.models import QueryDefinition

from collector.samples import CostRow, SourceError
from collector.sources._azure_common import Sleep, call_options, make_retrying, sdk_options

__all__ = ["COST_COLUMNS", "DEFAULT_BASE_URL", "KNOWN_COLUMNS", "AzureCostSource"]

log = logging.getLogger(__name__)

COST_COLUMNS = ("Cost", "PreTaxCost", "CostUSD")  # preference order when several are present
# Dimensions a grouping may bring back, in the order used to name a row without a tag match.
_DIMENSIONS = ("ResourceId", "ResourceGroupName", "ResourceGroup", "ResourceType", "ServiceName")
KNOWN_COLUMNS = frozenset(
    {*COST_COLUMNS, *_DIMENSIONS, "UsageDate", "BillingMonth", "Currency", "TagKey", "TagValue"}
)
DEFAULT_BASE_URL = "https://management.azure.com"  # public cloud Resource Manager
_MAX_PAGES = 1000  # a guard against a service that keeps answering with a nextLink


class AzureCostSource:
    """A ``CostSource`` reading billed daily cost for ``scope`` (e.g.
    ``subscriptions/<id>`` or ``subscriptions/<id>/resourceGroups/<rg>``).

    ``base_url`` overrides the Resource Manager endpoint (tests, sovereign clouds);
    ``connection_verify`` may name a CA bundle.
    """

    def __init__(
        self,
        name: str,
        scope: str,
        credential: TokenCredential,
        base_url: str | None = None,
        tag_endpoint_map: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        *,
        tag_key: str = "azuremlendpoint",
        attempts: int = 5,
        max_wait_s: float = 300.0,
        connection_verify: bool | str = True,
        sleep: Sleep | None = None,
    ) -> None:
        self.name = name
        self._scope = scope.strip("/")
        self._tag_key = tag_key
        self._tag_map = {k.lower(): v for k, v in tag_endpoint_map.items()} if tag_endpoint_map else None
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._max_wait_s = max_wait_s
        self._sleep: Sleep = sleep if sleep is not None else _real_sleep
        self._base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._client = CostManagementClient(credential, self._base_url, **sdk_options(connection_verify))
        self._reported_columns: set[tuple[str, ...]] = set()

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self._client.close()

    def query_body(self, start: date, end: date) -> dict[str, Any]:
        """The ``QueryDefinition`` sent for the days ``start..end`` (UTC, both included)."""
        return {
            "type": "ActualCost",
            "timeframe": "Custom",
            "timePeriod": {
                "from": f"{start.isoformat()}T00:00:00+00:00",
                "to": f"{end.isoformat()}T23:59:59+00:00",
            },
            "dataset": {
                "granularity": "Daily",
                "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
                "grouping": [
                    {"type": "Dimension", "name": "ResourceId"},
                    {"type": "TagKey", "name": self._tag_key},
                ],
            },
        }

    def fetch_costs(self, start: date, end: date) -> Iterable[CostRow]:
        """Daily billed cost rows for ``start..end``; ``SourceError`` when Azure fails after
        retries or answers with columns this source does not understand."""
        body = self.query_body(start, end)
        whole = (_midnight(start), _midnight(end) + timedelta(days=1))
        totals: dict[tuple[datetime, datetime, str, str, str], float] = defaultdict(float)
        definition = QueryDefinition(body)  # the typed model over the JSON that later pages send
        page = self._call(
            lambda: self._client.query.usage(self._scope, definition, **call_options(self._timeout_s))
        )
        for _ in range(_MAX_PAGES):
            if page is None:  # HTTP 204: nothing billed in the range
                break
            for key, amount in self._rows(page.get("properties") or {}, whole):
                totals[key] += amount
            next_link = (page.get("properties") or {}).get("nextLink")
            if not next_link:
                break
            page = self._call(lambda link=next_link: self._next_page(link, body))
        return [
            CostRow(s, e, endpoint, service, amount, cur, "billed")
            for (s, e, endpoint, service, cur), amount in totals.items()
        ]

    def _call(self, request: Any) -> Mapping[str, Any] | None:
        try:
            return make_retrying(self._attempts, self._sleep, max_wait_s=self._max_wait_s)(request)
        except AzureError as exc:
            raise SourceError(
                f"{self.name}: Cost Management query of {self._scope!r} failed: {exc.message}"
            ) from exc

    def _next_page(self, next_link: str, body: dict[str, Any]) -> Mapping[str, Any] | None:
        parts = urlsplit(next_link)
        url = f"{self._base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        response = self._client.send_request(
            HttpRequest("POST", url, json=body), **call_options(self._timeout_s)
        )
        response.raise_for_status()
        return None if response.status_code == 204 else response.json()

    def _rows(
        self, properties: Mapping[str, Any], whole: tuple[datetime, datetime]
    ) -> Iterable[tuple[tuple[datetime, datetime, str, str, str], float]]:
        columns = [str(c.get("name")) for c in properties.get("columns") or []]
        index = {name.lower(): i for i, name in enumerate(columns)}
        cost_name = next((c for c in COST_COLUMNS if c.lower() in index), None)
        self._check_columns(columns, cost_name)
        assert cost_name is not None  # _check_columns raised otherwise
        for row in properties.get("rows") or []:
            try:
                parsed = self._row(row, index, cost_name, whole)
            except (ValueError, TypeError, IndexError) as exc:  # a malformed cell, not an outage
                raise SourceError(f"{self.name}: Cost Management row {row!r} is malformed: {exc}") from exc
            if parsed is not None:
                yield parsed

    def _row(
        self, row: list[Any], index: dict[str, int], cost_name: str, whole: tuple[datetime, datetime]
    ) -> tuple[tuple[datetime, datetime, str, str, str], float] | None:
        amount = row[index[cost_name.lower()]]
        if amount is None:
            return None
        currency = "USD" if cost_name == "CostUSD" else str(row[index["currency"]])
        period = whole
        if "usagedate" in index:
            day = _day(row[index["usagedate"]])
            period = (day, day + timedelta(days=1))
        endpoint, service = self._endpoint_and_service(row, index)
        return (period[0], period[1], endpoint, service, currency), float(amount)

    def _check_columns(self, columns: list[str], cost_name: str | None) -> None:
        known = {c.lower() for c in KNOWN_COLUMNS} | {self._tag_key.lower()}
        unexpected = [c for c in columns if c.lower() not in known]
        missing_currency = cost_name not in (None, "CostUSD") and "currency" not in {
            c.lower() for c in columns
        }
        if not unexpected and cost_name is not None and not missing_currency:
            return
        message = (
            f"{self.name}: Cost Management answered with columns {columns}; expected a cost column "
            f"({', '.join(COST_COLUMNS)}), Currency, and only {sorted(KNOWN_COLUMNS)} "
            f"or the tag {self._tag_key!r}"
        )
        if tuple(columns) not in self._reported_columns:  # a daily job would repeat it every run
            self._reported_columns.add(tuple(columns))
            log.error("%s", message)
        raise SourceError(message)

    def _endpoint_and_service(self, row: list[Any], index: dict[str, int]) -> tuple[str, str]:
        def cell(column: str) -> str:
            i = index.get(column.lower())
            return str(row[i]) if i is not None and row[i] not in (None, "") else ""

        tag_value = cell(self._tag_key)
        if not tag_value and cell("TagKey").lower() == self._tag_key.lower():
            tag_value = cell("TagValue")
        endpoint = self._endpoint_for_tag(tag_value)
        if not endpoint:
            endpoint = next((v for v in map(cell, _DIMENSIONS) if v), self._scope)
        return endpoint, cell("ServiceName") or _provider(cell("ResourceId")) or cell(
            "ResourceType"
        ) or "Azure"

    def _endpoint_for_tag(self, tag_value: str) -> str:
        if not tag_value:
            return ""
        if self._tag_map is None:
            return tag_value
        return self._tag_map.get(tag_value.lower(), "")


def _real_sleep(seconds: float) -> None:
    import time  # only the default sleep touches the clock; tests inject their own

    time.sleep(seconds)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _day(value: Any) -> datetime:
    """``UsageDate`` is a number like 20250331 (Daily); accept an ISO string too."""
    text = str(int(value)) if isinstance(value, int | float) else str(value)
    if text.isdigit() and len(text) == 8:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:]), tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return _midnight(parsed.date())


def _provider(resource_id: str) -> str:
    """``/subscriptions/../providers/Microsoft.X/...`` -> ``Microsoft.X`` (the billing service)."""
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        i = lowered.index("providers")
        return parts[i + 1] if i + 1 < len(parts) else ""
    return ""
