"""The alert engine end to end: samples in a real store, rules, noise control, and
deliveries to a real SMTP server (aiosmtpd) and a real HTTP receiver, walked through
time with an explicit clock (every evaluation gets its ``now``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.build import build_channels
from alerts.engine import AlertEngine
from alerts.evaluate import Readings, evaluate_rules
from alerts.jobs import _evaluate
from alerts.rules import ScalingEvent
from collector.costs import GpuPrice
from collector.run import Collector
from collector.samples import Sample
from inferplane.config import ConfigError, parse_config
from inferplane.store import Store, StoreError, open_store
from tests.local_servers import Receiver, Smtp, start_receiver, start_smtp

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)
SPIKE_START, SPIKE_MINUTES = 120, 10

ENDPOINT = """\
endpoints:
  - name: chat
    target: {kind: local, model: some/model}
    max_replicas: 4
    price: {gpu_per_hour_usd: 1.5}
    latency_target_seconds: 2.0
  - name: hosted
    target: {kind: local, model: other/model}
    price: {input_per_1k_usd: 0.01, output_per_1k_usd: 0.03}
"""


def _config_text(smtp_port: int, noise: str = "", rules: str = "    - kind: token_spike\n") -> str:
    return (
        ENDPOINT
        + "alerts:\n"
        + (f"  noise: {{{noise}}}\n" if noise else "")
        + "  rules:\n"
        + rules
        + "  channels:\n"
        + f"    - {{kind: email, name: mail, host: 127.0.0.1, port: {smtp_port}, security: none,\n"
        + "       sender: inferplane@example.com, recipients: [oncall@example.com]}\n"
        + "    - {kind: webhook, name: hook, url_env: HOOK_URL, secret_env: HOOK_SECRET}\n"
    )


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    controller, started = start_smtp()
    yield started
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with start_receiver() as started:
        yield started


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'inferplane.db'}")
    yield opened
    opened.close()


def _engine(store: Store, text: str, receiver: Receiver) -> AlertEngine:
    config = parse_config(text)
    env = {"HOOK_URL": receiver.url, "HOOK_SECRET": "sign-me"}
    return AlertEngine(store, config, build_channels(config, env))


def _tokens_per_minute(minute: int) -> float:
    """A steady workload with some wobble; 4000/min during the spike."""
    if SPIKE_START <= minute < SPIKE_START + SPIKE_MINUTES:
        return 4000.0
    return 600.0 + 60.0 * math.sin(minute / 3)


def _write_traffic(
    store: Store, first: int, last: int, endpoint: str = "chat", shift: timedelta = timedelta(0)
) -> None:
    """Two replicas scraped every 15 s: token rates (70% prompt) and ready replicas;
    minute 0 is T0 + ``shift``."""
    samples = []
    for minute in range(first, last):
        per_second = _tokens_per_minute(minute) / 60 / 2  # split over two replicas
        for tick in range(4):
            at = T0 + shift + minute * MINUTE + timedelta(seconds=15 * tick)
            for replica in ("r0", "r1"):
                samples += [
                    Sample(at, endpoint, "prompt_tokens_per_second", per_second * 0.7, replica),
                    Sample(at, endpoint, "generated_tokens_per_second", per_second * 0.3, replica),
                    Sample(at, endpoint, "ready_replicas", 1.0, replica),
                ]
    store.write_samples(samples)


def _walk(engine: AlertEngine, store: Store, first: int, last: int) -> dict[int, Any]:
    """Evaluate once a minute in [first, last) after writing that minute's traffic."""
    reports = {}
    for minute in range(first, last):
        _write_traffic(store, minute - 1, minute)
        now = T0 + minute * MINUTE
        store.rollup(now)
        reports[minute] = engine.evaluate(now)
    return reports


def test_a_token_spike_is_mailed_and_posted_once_then_resolved(
    store: Store, smtp: Smtp, receiver: Receiver
) -> None:
    _write_traffic(store, 0, 100)
    engine = _engine(store, _config_text(smtp.port), receiver)
    reports = _walk(engine, store, 101, 140)

    fired = [m for m, r in reports.items() if r.findings]
    assert fired[0] == SPIKE_START + 1  # judged once its first minute is complete
    notified = [m for m, r in reports.items() if r.notifications]
    # group_wait (30 s) holds the first notice one evaluation; the resolve follows the
    # spike's end once even the 5-minute mean is back under its limit (4 minutes on).
    assert notified == [SPIKE_START + 2, SPIKE_START + SPIKE_MINUTES + 5]
    first, last = (reports[m] for m in notified)
    assert [n.status for n in first.notifications] == ["firing"]
    assert [n.status for n in last.notifications] == ["resolved"]
    assert all(d.ok and d.attempts == 1 for r in (first, last) for d in r.deliveries)

    # The e-mail: subject with the cost of two $1.50 replicas, body with the figures.
    assert len(smtp.inbox.messages) == 2
    mail = smtp.inbox.messages[0]
    assert mail["Subject"] == "[FIRING:1] chat: token_spike ($3.00/h)"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "x the baseline" in body and "tokens_per_minute=" in body and "$3.00/h" in body
    assert "[RESOLVED:1] chat: token_spike" == smtp.inbox.messages[1]["Subject"]

    # The webhook: Alertmanager v4 JSON, signed.
    assert len(receiver.requests) == 2
    payload = receiver.json(0)
    assert payload["version"] == "4" and payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"]["alertname"] == "token_spike" and alert["labels"]["endpoint"] == "chat"
    assert float(alert["annotations"]["cost_per_hour_usd"]) == pytest.approx(3.0)
    assert receiver.requests[0][1]["X-Inferplane-Signature"].startswith("sha256=")
    assert receiver.json(1)["alerts"][0]["status"] == "resolved"

    # History: one firing and one resolved transition, and every delivery attempt.
    events = store.read_alert_events(T0, T0 + timedelta(hours=3))
    assert [(e["status"], e["time"]) for e in events] == [
        ("firing", T0 + (SPIKE_START + 1) * MINUTE),
        ("resolved", T0 + (SPIKE_START + SPIKE_MINUTES + 5) * MINUTE),
    ]
    assert events[0]["details"]["figures"]["tokens_per_minute"] > 3 * 600
    deliveries = store.read_deliveries(T0, T0 + timedelta(hours=3))
    assert sorted((d["channel"], d["ok"]) for d in deliveries) == [("hook", True)] * 2 + [("mail", True)] * 2


def test_a_restart_neither_forgets_nor_renotifies(
    store: Store, smtp: Smtp, receiver: Receiver, tmp_path: Path
) -> None:
    _write_traffic(store, 0, 100)
    text = _config_text(smtp.port)
    _walk(_engine(store, text, receiver), store, 101, SPIKE_START + 5)
    assert len(receiver.requests) == 1

    reopened = open_store(f"sqlite:///{tmp_path / 'inferplane.db'}")
    restarted = _engine(reopened, text, receiver)
    assert len(restarted.load_state().firing) == 1
    reports = _walk(restarted, reopened, SPIKE_START + 5, SPIKE_START + SPIKE_MINUTES)
    assert all(r.findings and not r.notifications for r in reports.values())
    assert len(receiver.requests) == 1 and len(smtp.inbox.messages) == 1
    assert [e["status"] for e in reopened.read_alert_events(T0, T0 + timedelta(hours=3))] == ["firing"]
    reopened.close()


def test_a_failing_webhook_is_retried_recorded_and_does_not_stop_email(
    store: Store, smtp: Smtp, receiver: Receiver
) -> None:
    _write_traffic(store, 0, 100)
    receiver.statuses = [500, 500, 500]
    engine = _engine(store, _config_text(smtp.port, noise="group_wait_s: 0"), receiver)
    reports = _walk(engine, store, 101, SPIKE_START + 3)

    (report,) = [r for r in reports.values() if r.notifications]
    outcome = {d.channel: d for d in report.deliveries}
    assert outcome["mail"].ok and not outcome["hook"].ok and outcome["hook"].attempts == 3
    assert "HTTP 500" in (outcome["hook"].error or "") and "TOKEN123" not in (outcome["hook"].error or "")
    attempts = [d for d in store.read_deliveries(T0, T0 + timedelta(hours=3)) if d["channel"] == "hook"]
    assert [(d["attempt"], d["ok"], d["error"]) for d in attempts] == [
        (n, False, "HTTP 500") for n in (1, 2, 3)
    ]
    assert len(smtp.inbox.messages) == 1


def test_a_silence_mutes_until_it_expires(store: Store, smtp: Smtp, receiver: Receiver) -> None:
    _write_traffic(store, 0, 100)
    store.add_silence({"endpoint": "chat"}, T0, T0 + (SPIKE_START + 5) * MINUTE, "load test")
    engine = _engine(store, _config_text(smtp.port), receiver)
    reports = _walk(engine, store, 101, SPIKE_START + 8)
    notified = [m for m, r in reports.items() if r.notifications]
    # Muted while the silence lasts; once it ends the still-firing alert is news.
    assert notified == [SPIKE_START + 5]
    assert len(smtp.inbox.messages) == 1


def test_alertmanager_gets_every_firing_alert_each_evaluation(store: Store, receiver: Receiver) -> None:
    _write_traffic(store, 0, 100)
    text = ENDPOINT + (
        "alerts:\n  rules:\n    - kind: token_spike\n"
        f"  channels:\n    - {{kind: alertmanager, name: am, url: '{receiver.base}'}}\n"
    )
    engine = AlertEngine(store, parse_config(text), build_channels(parse_config(text), {}))
    _walk(engine, store, 101, SPIKE_START + SPIKE_MINUTES + 6)
    paths = {path for path, _, _ in receiver.requests}
    assert paths == {"/api/v2/alerts"}
    firing = [r for r in receiver.requests if "endsAt" not in r[2].decode()]
    # Pushed on every evaluation while it fired: the spike's minutes and the 4 minutes
    # until its 5-minute mean is back under the limit.
    assert len(firing) == SPIKE_MINUTES + 4
    assert "endsAt" in receiver.requests[-1][2].decode()  # then the resolve, with its end
    # Re-pushes are not news: the history keeps the first push and the resolve.
    assert len(store.read_deliveries(T0, T0 + timedelta(hours=3))) == 2


def test_idle_gpu_latency_and_spend_from_the_store(store: Store, smtp: Smtp, receiver: Receiver) -> None:
    rules = (
        "    - {kind: idle_gpu, floor: 0.1, for_hours: 2}\n"
        "    - {kind: latency_slo, for_minutes: 5}\n"
        "    - {kind: spend, daily_budget_usd: 20}\n"
    )
    now = T0 + timedelta(hours=12)
    samples = []
    for minute in range(0, 180, 1):
        at = now - timedelta(minutes=180 - minute)
        samples += [Sample(at, "chat", "gpu_utilization", 0.04, r) for r in ("r0", "r1")]
        samples += [Sample(at, "chat", "ready_replicas", 1.0, r) for r in ("r0", "r1")]
        # The router's count of ready replica-seconds: two replicas for the minute before.
        samples.append(Sample(at, "chat", "ready_replica_seconds", 120.0, "router"))
        if minute >= 170:
            samples.append(Sample(at, "chat", "request_latency_seconds_p95", 3.5, "r0"))
    store.write_samples(samples)
    # Costs as the collector writes them: re-estimated every five minutes as it goes.
    collector = Collector(store, prices={"chat": GpuPrice(1.5)})
    for minute in range(0, 181, 5):
        collector.estimate(now - timedelta(minutes=180 - minute))
    engine = _engine(store, _config_text(smtp.port, rules=rules), receiver)
    report = engine.evaluate(now)
    by_rule = {f.rule: f for f in report.findings}
    assert set(by_rule) == {"idle_gpu", "latency_slo", "spend_budget"}
    assert by_rule["idle_gpu"].cost_per_hour_usd == pytest.approx(3.0)  # 2 replicas x $1.50
    assert by_rule["latency_slo"].figures["p95_seconds"] == 3.5
    # $9 in three hours (2 replicas x $1.50/h) and $3/h now: 12 more hours at that rate.
    assert by_rule["spend_budget"].figures["spent_usd"] == pytest.approx(9.0)
    assert by_rule["spend_budget"].figures["projected_usd"] == pytest.approx(9.0 + 3.0 * 12)
    assert not report.problems


ALL_RULES = (
    "    - {kind: idle_gpu}\n    - {kind: latency_slo}\n    - kind: token_spike\n"
    "    - {kind: spend, daily_budget_usd: 1}\n    - kind: scaling\n"
)
TTFT = "time_to_first_token_seconds_p95"


@pytest.mark.parametrize(
    ("name", "rules", "readings", "expected"),
    [
        ("no data fires nothing", ALL_RULES, Readings(), []),
        ("a token-priced endpoint has no GPU to idle", "    - {kind: idle_gpu, endpoints: [hosted]}\n",
         Readings(gpu_utilization=[(T0 - timedelta(hours=h), 0.0) for h in range(4)],
                  ready_replicas=[(T0, 1.0)]), []),
        ("no TTFT target, no TTFT rule", "    - {kind: latency_slo, metric: " + TTFT + "}\n",
         Readings(latency_p95={TTFT:
                               [(T0 - timedelta(minutes=m), 9.0) for m in range(10)]}), []),
        ("a failed scale-up is critical", "    - {kind: scaling, endpoints: [chat]}\n",
         Readings(scaling_events=[ScalingEvent(T0, from_replicas=1, to_replicas=2, applied=False)]),
         [("scaling_failure", "critical")]),
    ],
)  # fmt: skip
def test_rule_table(name: str, rules: str, readings: Readings, expected: list[tuple[str, str]]) -> None:
    config = parse_config(_config_text(25, rules=rules))
    findings, problems = evaluate_rules(config, {"chat": readings, "hosted": readings}, T0)
    assert [(f.rule, f.severity) for f in findings] == expected, name
    assert problems == [], name


def test_a_store_failure_skips_one_evaluation_and_the_job_survives(
    store: Store, smtp: Smtp, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    engine = _engine(store, _config_text(smtp.port), receiver)
    engine.evaluate(T0)
    with store._engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE control_state"))
    with pytest.raises(StoreError, match="load state"):
        engine.evaluate(T0 + MINUTE)
    _evaluate(engine)  # what the scheduler runs: logs, does not raise
    assert "evaluation skipped, the store failed" in caplog.text


def test_a_missing_channel_secret_names_the_variable(smtp: Smtp) -> None:
    config = parse_config(_config_text(smtp.port))
    with pytest.raises(ConfigError, match="HOOK_URL"):
        build_channels(config, {})


def test_the_scheduled_job_evaluates_on_its_interval(store: Store, smtp: Smtp, receiver: Receiver) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from alerts.jobs import add_alert_jobs
    from tests.local_servers import wait_for

    engine = _engine(store, _config_text(smtp.port), receiver)
    scheduler = BackgroundScheduler(timezone="UTC")
    assert add_alert_jobs(scheduler, engine, 0.2) == ["alerts:evaluate"]
    scheduler.start()
    try:
        wait_for(lambda: store.load_state("alerts") is not None, 10, "a scheduled evaluation")
    finally:
        scheduler.shutdown()


def test_billed_from_azure_against_estimated_fires_a_reconciliation_alert(
    store: Store, smtp: Smtp, receiver: Receiver, tmp_path: Path
) -> None:
    """A day billed 25 % above its estimate: the estimate from the real estimator over the
    day's readings, the bill through the real Cost Management client from the stub
    answering Microsoft's example shape; the alert reaches the webhook as Alertmanager
    JSON naming the day."""
    from tests.azure_stub import AzureStub, StubResponse
    from tests.test_azure_sources import QUERY, cost_body, costs

    day = datetime(2025, 3, 31, tzinfo=UTC)
    store.write_samples(
        [Sample(day + i * MINUTE, "chat", "ready_replica_seconds", 60.0, "router") for i in range(24 * 60)]
    )
    workspace = (
        f"/subscriptions/{'0' * 8}-0000-0000-0000-{'0' * 12}/resourcegroups/rg/providers/x/workspaces/ws"
    )
    body = cost_body("SubscriptionQuery.json")
    body["properties"]["columns"] = [
        {"name": "Cost", "type": "Number"},
        {"name": "UsageDate", "type": "Number"},
        {"name": "ResourceId", "type": "String"},
        {"name": "TagKey", "type": "String"},
        {"name": "TagValue", "type": "String"},
        {"name": "Currency", "type": "String"},
    ]
    body["properties"]["rows"] = [[45.0, 20250331, workspace, "azuremlendpoint", "chat-prod", "USD"]]
    with AzureStub(tmp_path) as stub:
        stub.route(QUERY, StubResponse(200, body))
        source = costs(stub, tag_endpoint_map={"chat-prod": "chat"})
        collector = Collector(store, cost_sources=[source], prices={"chat": GpuPrice(1.5)})
        for hour in range(1, 25):  # the estimate as the day goes, then the bill a day late
            collector.estimate(day + timedelta(hours=hour, seconds=30))
        now = day + timedelta(days=1, hours=6)
        assert collector.collect_costs(source, now).error is None
    rules = "    - {kind: cost_reconciliation, max_difference: 0.1}\n"
    engine = _engine(store, _config_text(smtp.port, "group_wait_s: 0", rules=rules), receiver)
    (finding,) = engine.evaluate(now).findings
    assert finding.figures["estimated_usd"] == pytest.approx(36.0)  # 24 h x $1.50
    assert finding.figures["billed_usd"] == pytest.approx(45.0)
    posted = [r for r in receiver.requests if b"cost_reconciliation" in r[2]]
    assert posted, "the alert was posted to the webhook"
    import json

    alert = json.loads(posted[0][2])["alerts"][0]
    assert alert["labels"]["alertname"] == "cost_reconciliation"
    assert alert["labels"]["day"] == "2025-03-31"
    assert alert["status"] == "firing"


def test_the_spike_rule_reads_requests_and_reports_tokens_per_request(store: Store) -> None:
    # Six requests a minute on two replicas throughout: 100 tokens a request, then the
    # spike's 4,000 tokens a minute make 667. The reader turns requests_per_second into
    # requests per minute beside the tokens, and the finding says what a request costs.
    from alerts.readings import read_readings

    _write_traffic(store, 0, SPIKE_START + 3)
    store.write_samples(
        [
            Sample(
                T0 + minute * MINUTE + timedelta(seconds=15 * tick), "chat", "requests_per_second", 0.05, r
            )
            for minute in range(SPIKE_START + 3)
            for tick in range(4)
            for r in ("r0", "r1")
        ]
    )
    now = T0 + (SPIKE_START + 1) * MINUTE
    store.rollup(now)
    config = parse_config(ENDPOINT + "alerts:\n  rules:\n    - {kind: token_spike, endpoints: [chat]}\n")
    readings = read_readings(store, config, now)
    assert dict(readings["chat"].requests_per_minute)[T0 + SPIKE_START * MINUTE] == pytest.approx(6.0)
    findings, problems = evaluate_rules(config, readings, now)
    assert problems == []
    (finding,) = findings
    assert finding.figures["tokens_per_request"] == pytest.approx(4000 / 6, abs=0.1)
    assert 95 < finding.figures["baseline_tokens_per_request"] < 115
    assert "per request (usually" in finding.summary


def test_scaling_notices_are_events_sent_once_never_firing_alerts(
    store: Store, smtp: Smtp, receiver: Receiver
) -> None:
    # A scale-out 1 -> 2 of a $1.50 replica and, later, a scale-in 2 -> 1. The webhook
    # asks for notices, the mail does not: each notice reaches the webhook once, signed
    # the right way, and nothing is ever recorded as a firing alert.
    text = (
        ENDPOINT
        + "alerts:\n  noise: {group_wait_s: 0}\n  rules:\n    - {kind: scaling, notify_actions: true}\n"
        + "  channels:\n"
        + f"    - {{kind: email, name: mail, host: 127.0.0.1, port: {smtp.port}, security: none,\n"
        + "       sender: inferplane@example.com, recipients: [oncall@example.com]}\n"
        + "    - {kind: webhook, name: hook, url_env: HOOK_URL, notices: true}\n"
    )
    engine = _engine(store, text, receiver)
    store.write_scaling_event(T0, "chat", 1, 2, "load", applied=True, dry_run=False, inputs={})
    first = engine.evaluate(T0 + MINUTE)
    again = engine.evaluate(T0 + 2 * MINUTE)
    store.write_scaling_event(T0 + 3 * MINUTE, "chat", 2, 1, "quiet", applied=True, dry_run=False, inputs={})
    later = _engine(store, text, receiver).evaluate(T0 + 4 * MINUTE)  # a restart in between

    assert first.findings == [] and [n.summary for n in first.notices] == [
        "chat: scaled 1->2 replicas (load), +$1.50/h"
    ]
    assert again.notices == [] and again.deliveries == []
    assert [n.summary for n in later.notices] == ["chat: scaled 2->1 replicas (quiet), \u2212$1.50/h"]
    assert [receiver.json(i)["status"] for i in range(len(receiver.requests))] == ["notice", "notice"]
    assert receiver.json(0)["alerts"][0]["labels"]["alertname"] == "scaling_notice"
    assert smtp.inbox.messages == []
    assert store.read_alert_events(T0, T0 + timedelta(hours=1)) == []
    delivered = store.read_deliveries(T0, T0 + timedelta(hours=1))
    assert [(d["channel"], d["ok"]) for d in delivered] == [("hook", True), ("hook", True)]
