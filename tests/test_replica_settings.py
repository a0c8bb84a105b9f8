"""A local endpoint's ``replica_settings``: checked against the replica service's settings
at config load, handed by ``inferplane up`` to the router as ``--replica-setting``, and
by the router to every replica it starts. (That a replica obeys them, ``max_queue``
included, is shown live by the overload test in tests/test_faults_up.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.up_plan import UpOptions, plan_up
from inferplane.config import ConfigError, load_config
from tests.local_servers import free_port


def _config(tmp_path: Path, settings: str) -> Path:
    path = tmp_path / "inferplane.yaml"
    path.write_text(
        "endpoints:\n"
        "  - name: chat\n"
        "    target:\n"
        "      kind: local\n"
        "      model: smollm2-135m-instruct\n"
        f"      router_url: 'http://127.0.0.1:{free_port()}'\n"
        f"      replica_settings: {settings}\n"
        "    price: {gpu_per_hour_usd: 1.0}\n",
        encoding="utf-8",
    )
    return path


def _problems(path: Path) -> str:
    with pytest.raises(ConfigError) as error:
        load_config(path)
    return str(error.value)


def test_replica_settings_are_checked_and_converted(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "{max_batch_size: 4, max_queue: '4', warmup: false}"))
    target = config.endpoints[0].target
    assert target.replica_settings == {"max_batch_size": 4, "max_queue": 4, "warmup": False}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("settings", "key", "says"),
    [
        ("{max_queue: 4, max_qeue: 4}", "max_qeue", "unknown replica setting 'max_qeue'; expected one of"),
        ("{max_queue: -1}", "max_queue", "greater than or equal to 0"),
        ("{max_batch_size: lots}", "max_batch_size", "valid integer"),
        ("{engine: turbo}", "engine", "'dynamic' or 'continuous'"),
        ("{model: other}", "model", "the router sets it"),
        ("{endpoint: other}", "endpoint", "the router sets it"),
        ("{replica: '7'}", "replica", "the router sets it"),
        ("{redis_url: 'redis://:pw@host'}", "redis_url", "secret: set INFERPLANE_REDIS_URL"),
        ("{api_keys_file: /keys}", "api_keys_file", "secret: set INFERPLANE_API_KEYS_FILE"),
    ],
)
def test_a_bad_replica_setting_is_a_config_error_naming_it(
    tmp_path: Path, settings: str, key: str, says: str
) -> None:
    problems = _problems(_config(tmp_path, settings))
    assert f":7: endpoints[0].target.replica_settings.{key}: " in problems, problems
    assert says in problems, problems
    assert "pw" not in problems


def test_up_hands_each_replica_setting_to_the_router(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "{max_batch_size: 2, max_queue: 2, warmup: false}"))
    options = UpOptions(tmp_path, tmp_path / "home", "sqlite://", dashboard=False, prometheus=False)
    router = next(child for child in plan_up(config, options).children if child.name == "router-chat")
    argv = list(router.argv)
    given = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--replica-setting"]
    assert given == ["max_batch_size=2", "max_queue=2", "warmup=false"]


def test_without_replica_settings_up_passes_none(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "{}"))
    options = UpOptions(tmp_path, tmp_path / "home", "sqlite://", dashboard=False, prometheus=False)
    assert all("--replica-setting" not in child.argv for child in plan_up(config, options).children)


def _router(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, dict[str, Any]]:
    """``inferplane router ARGS`` with the replica factory and the server replaced:
    returns the exit code, the output and the settings every replica would get."""
    import uvicorn

    import inference.replica_pool

    seen: dict[str, Any] = {}

    def factory(log_dir: Path, settings: dict[str, object], ports: object = None) -> object:
        seen.update(settings)
        return lambda *a, **k: None

    monkeypatch.setattr(inference.replica_pool, "process_factory", factory)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    result = CliRunner().invoke(app, ["router", "--replicas", "0", "--endpoint", "chat", *args])
    return result.exit_code, result.output, seen


def test_the_router_gives_its_replicas_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, output, seen = _router(
        monkeypatch,
        *("--log-dir", str(tmp_path), "--replica-setting", "max_queue=2"),
        *("--replica-setting", "max_batch_size=3"),
    )
    assert code == 0, output
    assert seen["max_queue"] == "2" and seen["max_batch_size"] == "3" and seen["endpoint"] == "chat"


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("max_queue", "expected KEY=VALUE, got 'max_queue'"),
        ("=4", "expected KEY=VALUE"),
        ("max_qeue=4", "unknown replica setting 'max_qeue'"),
        ("max_queue=many", "valid integer"),
        ("api_keys=k", "secret"),
    ],
)
def test_a_bad_replica_setting_option_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pair: str, says: str
) -> None:
    code, output, seen = _router(monkeypatch, "--log-dir", str(tmp_path), "--replica-setting", pair)
    assert code == 2, output
    flat = " ".join(output.replace("│", " ").split())
    assert "--replica-setting" in flat and says in flat, flat
    assert not seen  # nothing started


def test_the_router_routes_as_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import inference.router

    built: list[Any] = []
    real = inference.router.create_router_app
    monkeypatch.setattr(
        inference.router,
        "create_router_app",
        lambda settings, *a, **k: built.append(settings) or real(settings, *a, **k),
    )
    code, output, _ = _router(monkeypatch, "--log-dir", str(tmp_path), "--routing", "least-prefill")
    assert code == 0, output
    assert [s.routing for s in built] == ["least-prefill"]
    code, output, _ = _router(monkeypatch, "--log-dir", str(tmp_path), "--routing", "random")
    flat = " ".join(output.replace("│", " ").split())  # the message as one line, without its box
    assert code == 2 and "must be one of fewest-requests, least-prefill, got 'random'" in flat, output
