"""``promtool check metrics`` on every /metrics inferplane serves: the bundled service's
(after traffic, so that every histogram and counter has samples) and the router's (after
a forwarded request and with a replica per label value). promtool is Prometheus' own
linter of the exposition format and the naming conventions (units, ``_total``)."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.conftest import ServiceProcess
from tests.local_servers import wait_for
from tests.test_router import Fleet, chat, metric, running_router


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by test.sh (Debian package prometheus)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    # promtool exits 0 when clean, 3 for lint problems and prints each one.
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


@pytest.mark.slow
def test_the_service_metrics_pass_promtool(service: ServiceProcess) -> None:
    answer = httpx.post(service.url + "/generate", json={"prompt": "Hi", "max_tokens": 4}, timeout=120)
    assert answer.status_code == 200, answer.text
    text = httpx.get(service.url + "/metrics", timeout=10).text
    assert "inferplane_request_latency_seconds_bucket" in text
    promtool_check(text)


def test_the_router_metrics_pass_promtool() -> None:
    fleet = Fleet()
    with running_router(fleet, initial_replicas=2) as url:
        wait_for(lambda: metric(url, "inferplane_router_ready_replicas") == 2, 10, "two ready replicas")
        assert chat(url).status_code == 200
        text = httpx.get(url + "/metrics", timeout=10).text
    assert "inferplane_router_requests_total" in text
    promtool_check(text)


def test_promtool_check_is_not_a_rubber_stamp() -> None:
    """A counter without ``_total`` is a lint problem promtool reports."""
    with pytest.raises(AssertionError, match="_total"):
        promtool_check("# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests 1\n")
