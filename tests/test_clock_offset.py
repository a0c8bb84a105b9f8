"""``INFERPLANE_CLOCK_OFFSET_S``: the control plane's one clock, moved for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from typer.testing import CliRunner

from commands.cli import app
from commands.control_plane import offset_clock

runner = CliRunner()


def test_the_offset_clock_runs_at_the_wall_clocks_pace_from_its_offset() -> None:
    clock = offset_clock(-86_400)
    before = datetime.now(UTC)
    moved = clock()
    after = datetime.now(UTC)
    assert before - timedelta(days=1) <= moved <= after - timedelta(days=1)


def test_a_bad_offset_names_the_variable_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "inferplane.yaml"
    config.write_text(resources.files("inferplane").joinpath("example.yaml").read_text("utf-8"))
    result = runner.invoke(
        app,
        ["control-plane", "--config", str(config), "--store", f"sqlite:///{tmp_path / 's.db'}"],
        env={"INFERPLANE_CLOCK_OFFSET_S": "an hour"},
    )
    assert result.exit_code == 2
    assert "INFERPLANE_CLOCK_OFFSET_S='an hour': expected a number of seconds" in result.stderr
    assert not (tmp_path / "s.db").exists()  # failed before opening the store
