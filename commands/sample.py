"""Sample data for the dashboard: a store and a config that look like a real deployment's.

``write_sample(directory, now=...)`` simulates ``days`` of ``endpoints`` self-hosted
endpoints (a diurnal load, off-hours scale to zero on a schedule, a token spike, a
latency incident, idle GPUs at night) plus one hosted per-token endpoint, and writes it
through the real store API the way the collector, the autoscaler and the alert engine
do: endpoint-level samples (rolled up, then trimmed by the default retention), daily
billed costs for some endpoints, alert transitions with their deliveries and a replay
comparison. The replica counts and scaling decisions are the real policy's
(``autoscaler.policy.decide`` on ``read_window``'s windows) and the estimated costs the
real collector's (``Collector.estimate`` over time), run by ``commands.sample_loop``
against the config the sample writes. The same arguments give the same data.

Readings are one a minute over the last two days (the raw retention) and one every fifteen
minutes before that: older data only survives as rollups, and this keeps 30 days of 20
endpoints quick to write.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from autoscaler.replay.report import COLUMNS
from commands.sample_loop import tick_times
from commands.sample_records import (
    CHANNELS,
    HOSTED,
    HOSTED_PRICE,
    write_endpoint,
    write_hosted,
    write_spend_alert,
)
from commands.sample_sim import Profile, endpoint_names, profiles
from inferplane.store import Store

__all__ = ["HOSTED", "SampleSet", "endpoint_names", "write_sample"]

# The replay comparison saved as "replay:sample": `inferplane replay --config
# examples/replay-a100.yaml --trace azure_llm_2023_code.csv --json` (figures from the README).
_REPLAY_ROWS = (
    ("configured", 6.021, 22.10, 0.9610, 1.783, 18, 80, "1-9"),
    ("static_peak", 8.625, 31.65, 0.9932, 0.757, 0, 74, "9"),
    ("static_mean", 1.925, 7.06, 0.5120, 18.567, 0, 332, "2"),
    ("threshold_80_30", 1.363, 5.00, 0.3576, 87.698, 2, 552, "1-2"),
    ("oracle", 1.402, 5.15, 0.9999, 1.301, 137, 38, "0-9"),
)


@dataclass(frozen=True)
class SampleSet:
    """Where the sample went: a SQLite store URL and an ``inferplane.yaml`` naming it."""

    store_url: str
    config_path: Path


def write_sample(
    directory: Path, *, now: datetime, days: int = 7, endpoints: int = 4, seed: int = 0
) -> SampleSet:
    """Write a sample store (``sample.db``, replacing one there) and config
    (``inferplane.yaml``) into ``directory``; raises ``ValueError`` on bad arguments."""
    from inferplane.config.loader import parse_config
    from inferplane.store import open_store

    if days < 1 or endpoints < 1:
        raise ValueError(f"a sample needs at least 1 day and 1 endpoint, not {days} and {endpoints}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    directory.mkdir(parents=True, exist_ok=True)
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    start, raw_from = tick_times(end, days)
    span = (start, raw_from, end)
    chosen = profiles(endpoints)
    database = directory / "sample.db"
    for old in (database, database.with_name("sample.db-wal"), database.with_name("sample.db-shm")):
        old.unlink(missing_ok=True)  # a sample is written whole, never on top of another
    store_url = f"sqlite:///{database}"
    # The loop runs the config the sample hands over (its budget is set from the costs).
    config = parse_config(_config_yaml(chosen, store_url, budget=10.0), "inferplane.yaml")
    store = open_store(store_url)
    outage = (end - timedelta(hours=5), end - timedelta(hours=5) + timedelta(minutes=12))
    try:
        for index, profile in enumerate(chosen):
            gap = outage if index == min(1, len(chosen) - 1) else None
            endpoint = config.endpoint(profile.name)
            write_endpoint(store, endpoint, profile, span, random.Random(seed * 1000 + index), gap)
        write_hosted(store, span, random.Random(seed * 1000 + 999))
        budget = write_spend_alert(store, chosen[0].name, end)
        _write_alert_state(store, start, end)
        muted = {"endpoint": chosen[-1].name, "rule": "latency_slo"}
        store.add_silence(muted, end - timedelta(hours=1), end + timedelta(hours=3), "planned load test")
        store.save_state("replay:sample", replay_document(chosen), end)
        store.rollup(end)
        store.apply_retention(end)
    finally:
        store.close()
    config_path = directory / "inferplane.yaml"
    config_path.write_text(_config_yaml(chosen, store_url, budget), encoding="utf-8")
    return SampleSet(store_url, config_path)


def _write_alert_state(store: Store, start: datetime, end: datetime) -> None:
    """The alert engine's saved state (key "alerts"): the alerts still firing at ``end``,
    each endpoint's group notified 30 s after its newest alert fired."""
    from alerts.model import Alert, Finding
    from alerts.state import AlertState, GroupState, to_records

    latest = {e["fingerprint"]: e for e in store.read_alert_events(start, end + timedelta(minutes=1))}
    firing: dict[str, Alert] = {}
    groups: dict[str, GroupState] = {}
    for key, event in latest.items():
        if event["status"] != "firing":
            continue
        d = event["details"]
        since = datetime.fromisoformat(d["since"])
        finding = Finding(event["rule"], event["endpoint"], event["summary"], d["severity"], since,
                          d["figures"], d["cost_per_hour_usd"], d["labels"])  # fmt: skip
        firing[key] = Alert(finding, "firing", datetime.fromisoformat(d["starts_at"]))
        group = groups.get(event["endpoint"])
        notified = (group.notified if group else frozenset()) | {key}
        groups[event["endpoint"]] = GroupState(event["time"], event["time"] + timedelta(seconds=30), notified)
    store.save_state("alerts", to_records(AlertState(firing, {}, groups)), end)


def replay_document(chosen: list[Profile]) -> dict[str, Any]:
    """What `inferplane replay --json` prints (figures of the A100 example on the shared trace)."""
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in _REPLAY_ROWS]
    return {
        "endpoint": chosen[min(2, len(chosen) - 1)].name,
        "trace": "azure_llm_2023_code.csv",
        "requests": 8818,
        "time_scale": 1.0,
        "load_scale": 1.0,
        "ttft_target_seconds": 2.0,
        "runtime_seconds": 0.9,
        "rows": rows,
    }


def _config_yaml(chosen: list[Profile], store_url: str, budget: float) -> str:
    """The sample's inferplane.yaml: every endpoint, the hosted one, alert rules, channels."""
    endpoints: list[dict[str, Any]] = []
    for p in chosen:
        target: dict[str, Any] = {"kind": "local", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"}
        if p.kind == "kubernetes":
            target = {"kind": "kubernetes", "namespace": "inference", "deployment": p.name}
        # Polled every minute (the readings' interval); the rest is the policy's defaults.
        autoscaling: dict[str, Any] = {"poll_interval_s": 60, "off_hours_replicas": 0}
        if p.scheduled:
            autoscaling["schedules"] = [{"when": p.schedule, "min_replicas": 1}]
        endpoints.append(
            {
                "name": p.name,
                "target": target,
                "min_replicas": 0 if p.scheduled else 1,
                "max_replicas": p.max_replicas,
                "price": {"gpu_per_hour_usd": p.gpu_per_hour_usd, "gpus_per_replica": p.gpus_per_replica},
                "latency_target_seconds": p.latency_target_s,
                "ttft_target_seconds": p.ttft_target_s,
                "autoscaling": autoscaling,
            }
        )
    resource = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ai-rg/providers/"
        "Microsoft.CognitiveServices/accounts/contoso-openai"
    )
    endpoints.append(
        {
            "name": HOSTED,
            "target": {"kind": "azure_openai", "resource_id": resource, "deployment": HOSTED},
            "price": {
                "input_per_1k_usd": HOSTED_PRICE.input_per_1k_usd,
                "output_per_1k_usd": HOSTED_PRICE.output_per_1k_usd,
            },
            "ttft_target_seconds": 1.0,
        }
    )
    alerts = {
        "rules": [
            {"kind": "token_spike", "tokens": "both"},
            {"kind": "spend", "endpoints": [chosen[0].name], "monthly_budget_usd": budget},
            {"kind": "idle_gpu", "floor": 0.1, "for_hours": 2},
            {"kind": "latency_slo", "metric": "request_latency_seconds_p95", "for_minutes": 5},
            {"kind": "scaling"},
        ],
        "channels": [
            {
                "kind": "email",
                "name": CHANNELS[0],
                "host": "smtp.example.com",
                "sender": "inferplane@example.com",
                "recipients": ["oncall@example.com"],
                "username_env": "INFERPLANE_SMTP_USER",
                "password_env": "INFERPLANE_SMTP_PASSWORD",
            },
            {"kind": "webhook", "name": CHANNELS[1], "url_env": "INFERPLANE_WEBHOOK_URL"},
        ],
    }
    document = {"store": {"url": store_url}, "endpoints": endpoints, "alerts": alerts}
    header = "# inferplane sample configuration (written by commands.sample; no secrets in it)\n"
    return header + yaml.safe_dump(document, sort_keys=False)
