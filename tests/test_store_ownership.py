"""Whoever opens the store closes it: the rooms close only their own connections.

The control plane opens one store and hands it to the collector, the autoscaler and the
alert engine. Each room's ``close()`` closes its sources, targets or channels and leaves
the store to its owner, so the store is closed once, after every room is done with it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.control_plane import control_plane_jobs
from inferplane.config import InferplaneConfig, parse_config
from inferplane.store import Store, open_store


def count_closes(store: Store) -> list[str]:
    """``store`` made to note each close in the list returned."""
    closed: list[str] = []
    real = store.close

    def close() -> None:
        closed.append("store")
        real()

    store.close = close  # type: ignore[method-assign]
    return closed


def example() -> InferplaneConfig:
    """The built-in configuration: every room (collector, autoscaler, alerts) is in it."""
    return parse_config(resources.files("inferplane").joinpath("example.yaml").read_text("utf-8"))


@pytest.fixture
def counted_store(tmp_path: Path) -> tuple[Store, list[str]]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    return store, count_closes(store)


def test_the_rooms_leave_the_store_to_the_control_plane_that_closes_it_once_and_last(
    counted_store: tuple[Store, list[str]],
) -> None:
    store, closed = counted_store
    jobs = control_plane_jobs(example(), store)
    assert len(jobs.parts) == 3, jobs.parts  # collecting, autoscaling and alerting: every room
    for close in jobs.closers[:-1]:
        close()
    assert closed == [], "a room closed the store it was handed"
    jobs.closers[-1]()
    assert closed == ["store"]


def test_a_room_that_fails_to_build_leaves_the_store_closed_once(
    counted_store: tuple[Store, list[str]],
) -> None:
    # The autoscaler refuses to build after the collector was built: what was built is
    # closed, and the store, which the jobs own from the start, once.
    store, closed = counted_store
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("autoscaler.build.build_autoscaler", _refuse)
        with pytest.raises(RuntimeError, match="no target"):
            control_plane_jobs(example(), store)
    assert closed == ["store"]


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("no target")


def test_a_room_whose_close_fails_still_leaves_the_store_closed(
    counted_store: tuple[Store, list[str]],
) -> None:
    # Closing is best effort for every part: the room's error is raised, after the store.
    store, closed = counted_store
    jobs = control_plane_jobs(example(), store)
    jobs.closers.insert(0, _refuse)
    with pytest.raises(RuntimeError, match="no target"):
        jobs.close()
    assert closed == ["store"]


@pytest.mark.parametrize(
    ("command", "exit_code"),
    # Nothing the built-in configuration reads runs here: collect's every source fails.
    [(["autoscaler", "status"], 0), (["alerts", "evaluate", "--once"], 0), (["collect", "--once"], 1)],
    ids=["autoscaler status", "alerts evaluate", "collect"],
)
def test_a_command_closes_the_store_it_opened_once(
    command: list[str], exit_code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the built-in configuration (no inferplane.yaml here): the command opens the store,
    # the room it builds leaves it alone, and the command closes it once.
    import inferplane.store

    monkeypatch.chdir(tmp_path)
    opened: list[list[str]] = []
    real_open = inferplane.store.open_configured_store

    def counting_open(*args: object, **kwargs: object) -> Store:
        store = real_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(count_closes(store))
        return store

    monkeypatch.setattr(inferplane.store, "open_configured_store", counting_open)
    result = CliRunner().invoke(app, [*command, "--store", f"sqlite:///{tmp_path / 'store.db'}"])
    assert result.exit_code == exit_code, result.output
    assert opened == [["store"]]
