"""Replicas sharing a machine split its cores instead of each taking all of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from commands.cli_router import split_cores
from tests.conftest import start_service


@pytest.mark.parametrize(("cores", "replicas", "threads"), [(2, 3, 1), (2, 1, 2), (16, 4, 4), (16, 5, 3)])
def test_the_router_splits_the_cores_over_its_replicas(
    monkeypatch: pytest.MonkeyPatch, cores: int, replicas: int, threads: int
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(cores)))
    assert split_cores(replicas) == threads


def test_a_replica_uses_the_threads_it_is_given(tmp_path: Path) -> None:
    replica = start_service(tmp_path, cpu_threads=1)
    try:
        ready = httpx.get(replica.url + "/ready", timeout=10).json()
        assert ready["cpu_threads"] == 1
        answer = httpx.post(replica.url + "/generate", json={"prompt": "Hi", "max_tokens": 2}, timeout=120)
        assert answer.status_code == 200, answer.text
    finally:
        replica.stop()
