"""Which configuration a command uses: the one given, else ./inferplane.yaml, else the
built-in one (the file ``inferplane up`` runs on); every command says which on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from inferplane.config import example_config_text

runner = CliRunner()


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with no inferplane.yaml, and a fresh INFERPLANE_HOME."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("INFERPLANE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("INFERPLANE_STORE_URL", raising=False)
    return tmp_path / "home" / "run" / "inferplane.yaml"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["autoscaler", "status"], "chat:", id="autoscaler-status"),
        pytest.param(["alerts", "list"], "firing now: 0", id="alerts-list"),
        pytest.param(["config", "check"], ": OK", id="config-check"),
    ],
)
def test_without_a_config_a_command_runs_on_the_built_in_one_and_says_so(
    bare: Path, args: list[str], says: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"configuration: the built-in one ({bare})" in result.stderr
    assert says in result.stdout
    # The same file `inferplane up` writes and runs on, so both read one store.
    assert bare.read_text(encoding="utf-8") == example_config_text()


def test_an_inferplane_yaml_here_is_found_and_named(bare: Path) -> None:
    Path("inferplane.yaml").write_text(
        example_config_text().replace("name: chat", "name: mine").replace("endpoint: chat", "endpoint: mine")
    )
    result = runner.invoke(app, ["autoscaler", "status"])
    assert result.exit_code == 0, result.output
    assert "configuration: inferplane.yaml (found here)" in result.stderr
    assert "mine:" in result.stdout and not bare.exists()


def test_a_given_config_is_named_and_a_missing_one_is_an_error(bare: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["alerts", "list", "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert f"configuration: {tmp_path / 'none.yaml'}" in result.stderr
    assert "no such file" in result.stderr and not bare.exists()
