"""The Azure sources through their real SDK clients against a local HTTPS stub that
answers with the official azure-rest-api-specs examples (tests/fixtures/azure/SOURCES.md).

GetMetric.json is a storage account answer; where a test needs inference metrics it
relabels the metric names (and, for totals, the aggregation key) and keeps the payload's
shape, values, dimensions and interval as published.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure_monitor_stub import MetricsBatchStub, Readings
from azure_stub import AzureStub, RecordedRequest, StaticCredential, StubResponse, example, metrics_batch_body

from collector.costs import TokenPrice
from collector.run import Collector
from collector.samples import SourceError
from collector.sources.azure_costs import AzureCostSource
from collector.sources.azure_monitor import AzureMonitorSource, AzureResource
from inferplane.store import open_store

SUB = "00000000-0000-0000-0000-000000000000"
OPENAI_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/oai"
DEPLOYMENT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    "/workspaces/ws/onlineEndpoints/chat/deployments/blue"
)
START, END = datetime(2021, 4, 20, 9, tzinfo=UTC), datetime(2021, 4, 20, 14, tzinfo=UTC)
QUERY = "/providers/Microsoft.CostManagement/query"
RATELIMIT = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[AzureStub]:
    with AzureStub(tmp_path) as server:
        yield server


class Sleeps(list[float]):
    """The injected sleep: records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def get_metric(renames: dict[str, str], aggregation_as: str = "average") -> Any:
    """GetMetric.json with its metrics renamed, as Azure answers a request without a
    filter: the example's five ``tier`` series of each metric are one unsplit series
    (totals summed, averages averaged, maxima the largest)."""
    body = copy.deepcopy(example("monitor/GetMetric.json")["responses"]["200"]["body"])
    for metric in body["value"]:
        metric["name"]["value"] = renames[metric["name"]["value"]]
        metric["timeseries"] = [{"metadatavalues": [], "data": _merged(metric["timeseries"], aggregation_as)}]
    return body


def _merged(timeseries: list[Any], aggregation_as: str) -> list[Any]:
    points: list[Any] = []
    for at in zip(*(series["data"] for series in timeseries), strict=True):
        point: dict[str, Any] = {"timeStamp": at[0]["timeStamp"]}
        for key, combine in (("average", statistics.fmean), ("minimum", min), ("maximum", max)):
            values = [p[key] for p in at if p.get(key) is not None]
            if values:
                point["total" if key == "average" and aggregation_as == "total" else key] = (
                    math.fsum(values) if key == "average" and aggregation_as == "total" else combine(values)
                )
        points.append(point)
    return points


def monitor(stub: AzureStub, resource: AzureResource, sleep: Sleeps | None = None) -> AzureMonitorSource:
    return AzureMonitorSource(
        "azure-monitor",
        [resource],
        StaticCredential(),
        stub.url,
        timeout_s=5,
        retries=2,
        connection_verify=str(stub.ca_bundle),
        sleep=sleep if sleep is not None else Sleeps(),
    )


def costs(stub: AzureStub, sleep: Sleeps | None = None, **kwargs: Any) -> AzureCostSource:
    return AzureCostSource(
        "azure-costs",
        f"/subscriptions/{SUB}",
        StaticCredential(),
        base_url=stub.url,
        timeout_s=5,
        connection_verify=str(stub.ca_bundle),
        sleep=sleep if sleep is not None else Sleeps(),
        **kwargs,
    )


def cost_body(name: str) -> Any:
    return copy.deepcopy(example(f"costmanagement/{name}")["responses"]["200"]["body"])


# --- Azure Monitor ---------------------------------------------------------------------


def test_openai_totals_become_rates_per_the_answered_interval(stub: AzureStub) -> None:
    names = {"BlobCount": "ProcessedPromptTokens", "BlobCapacity": "GeneratedTokens"}
    stub.route(
        "metrics:getBatch", StubResponse(200, metrics_batch_body(get_metric(names, "total"), OPENAI_ID))
    )
    samples = list(monitor(stub, AzureResource("chat", OPENAI_ID, "openai")).fetch(START, END))

    by_metric = {(s.metric, s.time.hour): s for s in samples}
    assert len(samples) == 20  # (2 rates + 2 counts) x 5 hours; the 5 tier splits are summed
    # 7 + 2 + 0 + 0 + 0 tokens in a PT1H interval (Azure widened the PT1M asked for)
    assert by_metric[("prompt_tokens_per_second", 9)].value == pytest.approx(9 / 3600)
    assert by_metric[("generated_tokens_per_second", 13)].value == pytest.approx((621492 + 4733) / 3600)
    # The totals themselves, as counts: what the hour served, summed by money and tokens.
    assert by_metric[("prompt_tokens", 9)].value == 9
    assert by_metric[("generated_tokens", 13)].value == 621492 + 4733
    assert all(s.endpoint == "chat" and s.replica == "" and s.time.tzinfo is not None for s in samples)

    (request,) = stub.requests
    assert request.method == "POST" and request.path == f"/subscriptions/{SUB}/metrics:getBatch"
    assert request.body == {"resourceids": [OPENAI_ID]}
    assert request.query["metricnamespace"] == ["Microsoft.CognitiveServices/accounts"]
    assert "InputTokens" in request.query["metricnames"][0].split(",")
    assert request.query["starttime"] == ["2021-04-20T09:00:00.000Z"]
    assert request.headers["authorization"] == "Bearer stub-token"


def test_time_to_response_is_milliseconds_to_seconds_and_foundry_names_count(stub: AzureStub) -> None:
    names = {"BlobCount": "InputTokens", "BlobCapacity": "AzureOpenAITimeToResponse"}
    body = get_metric(names)
    body["value"][0] = get_metric(names, "total")["value"][0]  # tokens are totals, latency an average
    stub.route("metrics:getBatch", StubResponse(200, metrics_batch_body(body, OPENAI_ID)))
    samples = list(monitor(stub, AzureResource("chat", OPENAI_ID, "openai")).fetch(START, END))

    ttft = [s for s in samples if s.metric == "time_to_first_token_seconds_p50"]
    assert len(ttft) == 5 and ttft[0].value == pytest.approx((621492 + 4733) / 5 / 1000)  # mean of splits
    prompt = [s for s in samples if s.metric == "prompt_tokens_per_second"]
    assert prompt[0].value == pytest.approx(9 / 3600)


NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def deployment_readings(minutes: int = 30) -> Readings:
    """Per-minute readings of a two-instance deployment from 12:00: GPU busy 20% and 60%,
    GPU memory 50% and 25%, capacity 2 (not per instance)."""
    at = [NOON + i * MINUTE for i in range(minutes)]
    return {
        DEPLOYMENT_ID: {
            "GpuUtilizationPercentage": {"i-0": dict.fromkeys(at, 20.0), "i-1": dict.fromkeys(at, 60.0)},
            "GpuMemoryUtilizationPercentage": {
                "i-0": dict.fromkeys(at, 50.0),
                "i-1": dict.fromkeys(at, 25.0),
            },
            "DeploymentCapacity": {"": dict.fromkeys(at, 2.0)},
        }
    }


def test_azure_openai_spend_is_the_tokens_azure_counted_across_an_hour_and_idle_minutes(
    stub: AzureStub, tmp_path: Path
) -> None:
    """The collector's real writer run every minute, as the scheduler runs it, against
    Azure Monitor answering as the service does (the newest 3 minutes empty, an idle
    minute an empty point) from 12:40 to 14:10. What the account served, minute by
    minute, is the ground truth: each hour's estimate is its tokens times the price,
    a lone busy minute between idle ones counted once, not held into the next."""
    served: dict[datetime, tuple[float, float]] = {}
    for i in range(40, 125):
        minute = NOON + i * MINUTE
        if i % 7 == 3 or i in (61, 62, 64, 65):  # idle minutes: around 13:03 one busy minute alone
            continue
        served[minute] = (1000.0 + 37 * i, 200.0 + 11 * i)
    readings: Readings = {
        OPENAI_ID: {
            "ProcessedPromptTokens": {"": {m: p for m, (p, _) in served.items()}},
            "GeneratedTokens": {"": {m: g for m, (_, g) in served.items()}},
        }
    }
    azure = MetricsBatchStub(readings, now=NOON + 41 * MINUTE)
    stub.respond("metrics:getBatch", azure)
    price = TokenPrice(input_per_1k_usd=0.5, output_per_1k_usd=1.5)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        source = monitor(stub, AzureResource("chat", OPENAI_ID, "openai"))
        collector = Collector(store, [source], prices={"chat": price}, first_window=timedelta(minutes=5))
        for i in range(41, 136):  # until every minute served is past the ingestion delay
            azure.now = NOON + i * MINUTE
            collector.run_once(azure.now)
        rows = {r.period_start: r.amount for r in store.read_costs(NOON, NOON + 4 * HOUR, endpoint="chat")}
    finally:
        store.close()
    truth: dict[datetime, float] = {}
    for minute, (prompt, generated) in served.items():
        hour = minute.replace(minute=0)
        truth[hour] = truth.get(hour, 0.0) + prompt / 1000 * 0.5 + generated / 1000 * 1.5
    assert rows == pytest.approx(truth)


def test_aml_deployment_gpu_is_read_per_replica_and_capacity_unsplit(stub: AzureStub) -> None:
    azure = MetricsBatchStub(deployment_readings(), now=NOON + 30 * MINUTE)
    stub.respond("metrics:getBatch", azure)
    resource = AzureResource("chat", DEPLOYMENT_ID, "aml_deployment")
    samples = list(monitor(stub, resource).fetch(NOON + 29 * MINUTE, NOON + 30 * MINUTE))

    gpu = {(s.replica, s.time.minute): s.value for s in samples if s.metric == "gpu_utilization"}
    assert {replica for replica, _ in gpu} == {"i-0", "i-1"}
    assert gpu[("i-0", 26)] == pytest.approx(0.2) and gpu[("i-1", 26)] == pytest.approx(0.6)
    replicas = [s for s in samples if s.metric == "replicas"]
    assert replicas and {(s.replica, s.value) for s in replicas} == {("", 2.0)}
    assert {s.metric for s in samples} == {"gpu_utilization", "replicas"}  # no memory size: no bytes
    split, unsplit = sorted(azure.asked, key=lambda q: "filter" not in q)
    assert split["filter"] == ["instanceId eq '*'"] and int(split["top"][0]) >= 10
    assert set(split["metricnames"][0].split(",")) == {
        "GpuUtilizationPercentage",
        "GpuMemoryUtilizationPercentage",
    }
    assert "filter" not in unsplit and unsplit["metricnames"] == ["DeploymentCapacity"]
    assert split["metricnamespace"] == [
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
    ]


def test_gpu_memory_percentage_becomes_bytes_per_replica_when_the_size_is_declared(stub: AzureStub) -> None:
    stub.respond("metrics:getBatch", MetricsBatchStub(deployment_readings(), now=NOON + 30 * MINUTE))
    resource = AzureResource("chat", DEPLOYMENT_ID, "aml_deployment", gpu_memory_bytes=80 * 2**30)
    samples = list(monitor(stub, resource).fetch(NOON + 29 * MINUTE, NOON + 30 * MINUTE))

    memory = {s.replica: s.value for s in samples if s.metric == "gpu_memory_used_bytes"}
    assert memory == {"i-0": pytest.approx(0.5 * 80 * 2**30), "i-1": pytest.approx(0.25 * 80 * 2**30)}


def test_the_newest_minutes_are_read_again_until_azure_has_them(stub: AzureStub) -> None:
    """The collector asks every minute for the minute just past; Azure's newest minutes are
    still empty then (ingestion delay). Re-reading a trailing window fills every minute
    once Azure has it; the store upserts what is read twice."""
    azure = MetricsBatchStub(deployment_readings(), now=NOON)
    stub.respond("metrics:getBatch", azure)
    source = monitor(stub, AzureResource("chat", DEPLOYMENT_ID, "aml_deployment"))
    stored: dict[tuple[str, datetime, str], float] = {}
    for minute in range(10, 21):
        azure.now = NOON + minute * MINUTE
        for s in source.fetch(azure.now - MINUTE, azure.now):
            stored[(s.metric, s.time, s.replica)] = s.value  # upsert by the store's key
    settled = azure.now - azure.ingestion_delay  # 12:17: buckets before it are in Azure
    expected = {NOON + i * MINUTE for i in range(5, 17)}
    for replica in ("i-0", "i-1"):
        got = {at for (metric, at, r) in stored if metric == "gpu_utilization" and r == replica}
        assert expected <= got, sorted(expected - got)
        assert all(at < settled for at in got)


def test_a_reread_window_shorter_than_the_ingestion_delay_is_refused() -> None:
    with pytest.raises(ValueError, match=r"reread 0:01:00 .* at least 0:05:00"):
        AzureMonitorSource(
            "azure-monitor",
            [AzureResource("chat", DEPLOYMENT_ID, "aml_deployment")],
            StaticCredential(),
            "https://127.0.0.1:1",
            reread=timedelta(minutes=1),
        )


def test_the_stub_answers_in_the_shape_of_the_official_batch_example(stub: AzureStub) -> None:
    """The stand-in's answer has the official example's keys at every level, and a bucket
    without data is a point with only a time stamp, as in MetricBatchExample.json."""
    official = example("monitor/MetricBatchExample.json")["responses"]["200"]["body"]["values"][0]
    azure = MetricsBatchStub(deployment_readings(), now=NOON + 30 * MINUTE)
    request = RecordedRequest(
        "POST",
        f"/subscriptions/{SUB}/metrics:getBatch",
        {
            "starttime": ["2026-03-02T12:20:00.000Z"],
            "endtime": ["2026-03-02T12:30:00.000Z"],
            "interval": ["PT1M"],
            "metricnamespace": ["Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"],
            "metricnames": ["GpuUtilizationPercentage"],
            "aggregation": ["average"],
            "filter": ["instanceId eq '*'"],
        },
        {},
        {"resourceids": [DEPLOYMENT_ID]},
    )
    [value] = azure(request).body["values"]
    assert list(value) == list(official)
    assert list(value["value"][0]) == list(official["value"][0])
    series = value["value"][0]["timeseries"][0]
    assert [m["name"]["value"] for m in series["metadatavalues"]] == ["instanceid"]  # lower case, as Azure
    official_empty = official["value"][0]["timeseries"][1]["data"][0]
    assert list(official_empty) == ["timeStamp"] == list(series["data"][-1])  # 12:29: not ingested yet
    assert series["data"][0] == {"timeStamp": "2026-03-02T12:20:00Z", "average": 20.0}


def test_storage_metrics_of_the_example_map_to_nothing(stub: AzureStub) -> None:
    body = get_metric({"BlobCount": "BlobCount", "BlobCapacity": "BlobCapacity"})
    stub.route("metrics:getBatch", StubResponse(200, metrics_batch_body(body, DEPLOYMENT_ID)))
    assert list(monitor(stub, AzureResource("chat", DEPLOYMENT_ID, "aml_deployment")).fetch(START, END)) == []


def test_per_metric_error_is_a_source_error_naming_the_source(stub: AzureStub) -> None:
    body = example("monitor/GetMetricError.json")["responses"]["200"]["body"]
    stub.route("metrics:getBatch", StubResponse(200, metrics_batch_body(body, OPENAI_ID)))
    with pytest.raises(SourceError, match=r"azure-monitor: .*MongoRequestsCount: InvalidSamplingType"):
        list(monitor(stub, AzureResource("chat", OPENAI_ID, "openai")).fetch(START, END))


def test_server_errors_are_retried_with_backoff_then_reported(stub: AzureStub) -> None:
    error = {"error": {"code": "InternalServerError", "message": "try later"}}
    stub.route("metrics:getBatch", StubResponse(503, error))
    sleeps = Sleeps()
    with pytest.raises(SourceError, match=r"azure-monitor: Azure Monitor query of .* failed"):
        list(monitor(stub, AzureResource("chat", OPENAI_ID, "openai"), sleeps).fetch(START, END))
    assert len(stub.requests) == 3 and sleeps == [1.0, 2.0]


def test_client_errors_are_not_retried(stub: AzureStub) -> None:
    stub.route(
        "metrics:getBatch", StubResponse(403, {"error": {"code": "AuthorizationFailed", "message": "no"}})
    )
    with pytest.raises(SourceError, match="AuthorizationFailed"):
        list(monitor(stub, AzureResource("chat", OPENAI_ID, "openai")).fetch(START, END))
    assert len(stub.requests) == 1


# --- Azure Cost Management -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param(
            "SubscriptionQuery.json",
            [("2018-03-31", "ScreenSharingTest-peer", 2.10333307059661)],
            id="daily-ungrouped",
        ),
        pytest.param(
            "ResourceGroupQuery.json",
            [("2018-04-18", "ScreenSharingTest-peer", 20.10333307059661)],
            id="resource-group-daily",
        ),
        pytest.param(
            "ResourceGroupQueryGrouping.json",
            [("2018-04-17", "Microsoft.SqlServer", 2.10333307059661)],
            id="grouped-by-resource-type",
        ),
        pytest.param(
            "SubscriptionQueryGrouping.json",
            [("2018-03-01", "Ssbciotelement01", 0.14384913581657052)],
            id="grouped-no-usage-date",
        ),
    ],
)
def test_cost_rows_from_each_example(stub: AzureStub, fixture: str, expected: list[Any]) -> None:
    body = cost_body(fixture)
    stub.route(QUERY, StubResponse(200, body))
    rows = list(costs(stub).fetch_costs(date(2018, 3, 1), date(2018, 4, 30)))

    assert len(rows) == len(body["properties"]["rows"])
    assert all(r.source == "billed" and r.currency == "USD" and r.period_start.tzinfo is UTC for r in rows)
    for day, endpoint, amount in expected:
        (row,) = [r for r in rows if r.endpoint == endpoint and r.period_start.date().isoformat() == day]
        assert row.amount == pytest.approx(amount)
    if fixture == "SubscriptionQueryGrouping.json":  # no UsageDate: the row covers the whole range
        assert rows[0].period_end == datetime(2018, 5, 1, tzinfo=UTC)


def test_query_asks_for_daily_actual_cost_grouped_by_resource_and_tag(stub: AzureStub) -> None:
    stub.route(QUERY, StubResponse(200, cost_body("SubscriptionQuery.json")))
    list(costs(stub).fetch_costs(date(2025, 3, 1), date(2025, 3, 31)))

    (request,) = stub.requests
    assert request.method == "POST" and request.path == f"/subscriptions/{SUB}{QUERY}"
    assert request.body["type"] == "ActualCost" and request.body["timeframe"] == "Custom"
    assert request.body["timePeriod"] == {
        "from": "2025-03-01T00:00:00+00:00",
        "to": "2025-03-31T23:59:59+00:00",
    }
    assert request.body["dataset"]["granularity"] == "Daily"
    assert request.body["dataset"]["grouping"] == [
        {"type": "Dimension", "name": "ResourceId"},
        {"type": "TagKey", "name": "azuremlendpoint"},
    ]


@pytest.mark.parametrize("cost_column", ["Cost", "PreTaxCost", "CostUSD"])
def test_tagged_workspace_cost_goes_to_its_endpoint(stub: AzureStub, cost_column: str) -> None:
    workspace = (
        f"/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.machinelearningservices/workspaces/ws"
    )
    body = cost_body("SubscriptionQuery.json")
    body["properties"]["columns"] = [
        {"name": cost_column, "type": "Number"},
        {"name": "UsageDate", "type": "Number"},
        {"name": "ResourceId", "type": "String"},
        {"name": "TagKey", "type": "String"},
        {"name": "TagValue", "type": "String"},
        {"name": "Currency", "type": "String"},
    ]
    body["properties"]["rows"] = [
        [10.0, 20250331, workspace, "azuremlendpoint", "chat-prod", "EUR"],
        [2.5, 20250331, workspace, "azuremlendpoint", "chat-prod", "EUR"],
        [1.0, 20250331, workspace, "", "", "EUR"],
    ]
    stub.route(QUERY, StubResponse(200, body))
    rows = list(
        costs(stub, tag_endpoint_map={"chat-prod": "chat"}).fetch_costs(date(2025, 3, 31), date(2025, 3, 31))
    )

    amounts = {r.endpoint: (r.amount, r.currency, r.service) for r in rows}
    currency = "USD" if cost_column == "CostUSD" else "EUR"
    assert amounts == {
        "chat": (12.5, currency, "microsoft.machinelearningservices"),
        workspace: (1.0, currency, "microsoft.machinelearningservices"),
    }


def test_next_link_is_followed_with_the_same_body(stub: AzureStub) -> None:
    first = cost_body("ManagementGroupQueryGrouping.json")  # its nextLink points at management.azure.com
    second = cost_body("SubscriptionQuery.json")
    stub.route(QUERY, StubResponse(200, first))
    stub.route("/Microsoft.CostManagement/Query", StubResponse(200, second))
    rows = list(costs(stub).fetch_costs(date(2018, 3, 1), date(2018, 4, 30)))

    assert len(rows) == 3 + 4
    page1, page2 = stub.requests
    assert page2.method == "POST" and page2.body == page1.body
    assert page2.query["$skiptoken"] == ["AQAAAA=="]  # re-based on the stub: the token never left it
    assert page2.path.endswith("/providers/Microsoft.CostManagement/Query")


def test_throttling_waits_the_longest_header_then_succeeds(stub: AzureStub) -> None:
    throttled = StubResponse(
        429,
        {"error": {"code": "429", "message": "Too many requests"}},
        {
            "Retry-After": "3",
            RATELIMIT: "7",
            "x-ms-ratelimit-microsoft.costmanagement-client-retry-after": "5",
        },
    )
    stub.route(QUERY, throttled, StubResponse(200, cost_body("ResourceGroupQuery.json")))
    sleeps = Sleeps()
    rows = list(costs(stub, sleeps).fetch_costs(date(2018, 4, 1), date(2018, 4, 30)))

    assert sleeps == [7.0] and len(rows) == 2 and len(stub.requests) == 2


def test_throttling_is_bounded(stub: AzureStub) -> None:
    stub.route(
        QUERY, StubResponse(429, {"error": {"code": "429", "message": "Too many"}}, {"Retry-After": "2"})
    )
    sleeps = Sleeps()
    with pytest.raises(SourceError, match=r"azure-costs: .*Too many"):
        list(costs(stub, sleeps, attempts=3).fetch_costs(date(2018, 4, 1), date(2018, 4, 30)))
    assert sleeps == [2.0, 2.0] and len(stub.requests) == 3


def test_no_content_gives_no_rows(stub: AzureStub) -> None:
    stub.route(QUERY, StubResponse(204))
    assert list(costs(stub).fetch_costs(date(2018, 4, 1), date(2018, 4, 30))) == []


def test_unexpected_columns_name_what_was_found_and_log_once(
    stub: AzureStub, caplog: pytest.LogCaptureFixture
) -> None:
    body = cost_body("SubscriptionQuery.json")
    body["properties"]["columns"][0]["name"] = "Amount"
    stub.route(QUERY, StubResponse(200, body))
    source = costs(stub)
    for _ in range(2):
        with pytest.raises(SourceError, match=r"azure-costs: .*columns \['Amount', 'ResourceGroup'"):
            list(source.fetch_costs(date(2018, 4, 1), date(2018, 4, 30)))
    assert len([r for r in caplog.records if "Amount" in r.getMessage()]) == 1


def test_malformed_usage_date_is_a_source_error(stub: AzureStub) -> None:
    body = cost_body("SubscriptionQuery.json")
    body["properties"]["rows"][0][2] = "yesterday"
    stub.route(QUERY, StubResponse(200, body))
    with pytest.raises(SourceError, match=r"azure-costs: .*malformed"):
        list(costs(stub).fetch_costs(date(2018, 4, 1), date(2018, 4, 30)))
