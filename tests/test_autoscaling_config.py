"""The autoscaling section: schedules, time zones, holidays, thresholds, bounds; every
bad value is named with its file line."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from inferplane.config import check_config, load_config
from inferplane.config.autoscaling import parse_window

ENDPOINT = """\
endpoints:
  - name: chat
    target: {kind: kubernetes, namespace: ml, deployment: chat}
    min_replicas: 1
    max_replicas: 4
    price: {gpu_per_hour_usd: 2.0}
    autoscaling:
"""


def write(tmp_path: Path, policy: str) -> Path:
    path = tmp_path / "inferplane.yaml"
    path.write_text(ENDPOINT + textwrap.indent(textwrap.dedent(policy), "      "), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "days", "start", "end", "zone"),
    [
        ("Mon-Fri 07:30-20:30 Europe/Berlin", {0, 1, 2, 3, 4}, time(7, 30), time(20, 30), "Europe/Berlin"),
        ("Sat,Sun 10:00-16:00 UTC", {5, 6}, time(10), time(16), "UTC"),
        ("Daily 00:00-24:00 America/New_York", set(range(7)), time(0), None, "America/New_York"),
        ("Fri-Mon 22:00-06:00 Asia/Tokyo", {4, 5, 6, 0}, time(22), time(6), "Asia/Tokyo"),
    ],
    ids=["weekdays", "weekend-list", "daily-to-midnight", "wrapping-days-overnight"],
)
def test_windows_parse(text: str, days: set[int], start: time, end: time | None, zone: str) -> None:
    spec = parse_window(text)
    assert (set(spec.days), spec.start, spec.end, spec.zone) == (days, start, end, zone)


def test_a_full_policy_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        poll_interval_s: 10
        schedules:
          - when: Mon-Fri 07:30-20:30 Europe/Berlin
            min_replicas: 2
            holidays: {country: DE, subdivision: BY}
          - kind: downtime
            when: Sun 02:00-04:00 UTC
        budget: {usd_per_day: 96}
        """,
    )
    policy = load_config(path).endpoints[0].autoscaling
    assert policy is not None and policy.poll_interval_s == 10
    assert policy.schedules[0].min_replicas == 2 and policy.schedules[0].holidays is not None
    assert policy.schedules[1].kind == "downtime" and policy.budget is not None


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            "schedules: [{when: 'weekdays 9-17 Berlin'}]",
            ":8: endpoints[0].autoscaling.schedules[0].when: schedule",
        ),
        ("schedules: [{when: 'Mon-Fri 07:30-20:30 Europe/Berlinn'}]", "unknown time zone 'Europe/Berlinn'"),
        ("schedules: [{when: 'Mon-Fri 07:30-20:30 europe/berlin'}]", "did you mean 'Europe/Berlin'"),
        ("schedules: [{when: 'Mon-Fri 07:30-25:00 UTC'}]", "'25:00' is not a time of day"),
        ("schedules: [{when: 'Mon-Fry 07:30-20:00 UTC'}]", "'mon-fry' is not a day"),
        ("schedules: [{when: 'Mon 08:00-08:00 UTC'}]", "starts and ends at the same time"),
        ("schedules: [{when: 'Mon 08:00-09:00 UTC', holidays: {country: XX}}]", "XX/None is unknown"),
        ("scale_in_utilization: 0.7", "scale_in_utilization (0.7) < target_utilization (0.6)"),
        ("scale_in_window_s: 30", "scale_in_window_s (30) is shorter than scale_out_window_s (60)"),
        ("off_hours_replicas: 9", "autoscaling.off_hours_replicas (9) exceeds max_replicas (4)"),
        (
            "schedules: [{when: 'Mon 08:00-09:00 UTC', min_replicas: 5}]",
            "schedules.0.min_replicas (5) exceeds max_replicas (4)",
        ),
        ("budget: {usd_per_hour: 1, usd_per_day: 2}", "set exactly one of usd_per_hour and usd_per_day"),
        ("poll_intervall_s: 10", "poll_intervall_s: unknown field; did you mean 'poll_interval_s'?"),
    ],
    ids=[
        "unparsable",
        "unknown-zone",
        "zone-case-hint",
        "bad-clock",
        "bad-day",
        "empty-window",
        "unknown-holidays",
        "thresholds-out-of-order",
        "scale-in-window-shorter",
        "off-hours-floor-above-max",
        "window-floor-above-max",
        "two-budgets",
        "typo",
    ],
)
def test_bad_policies_name_the_field(tmp_path: Path, policy: str, expected: str) -> None:
    problems = check_config(write(tmp_path, policy))
    assert len(problems) == 1, problems
    assert problems[0].startswith(str(tmp_path / "inferplane.yaml")) and expected in problems[0], problems[0]


def test_min_above_max_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inferplane.yaml"
    path.write_text(ENDPOINT.replace("min_replicas: 1", "min_replicas: 5") + "      {}\n", encoding="utf-8")
    problems = check_config(path)
    assert len(problems) == 1 and "min_replicas (5) must not exceed max_replicas (4)" in problems[0]


def test_hosted_endpoints_cannot_be_autoscaled(tmp_path: Path) -> None:
    path = tmp_path / "inferplane.yaml"
    path.write_text(
        "endpoints:\n  - name: gpt\n    target: {kind: azure_openai, deployment: gpt, resource_id: "
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/r/providers/"
        "Microsoft.CognitiveServices/accounts/a}\n"
        "    price: {input_per_1k_usd: 0.1, output_per_1k_usd: 0.2}\n"
        "    autoscaling: {}\n",
        encoding="utf-8",
    )
    problems = check_config(path)
    assert len(problems) == 1 and "observed and priced, not scaled" in problems[0]
