"""Structured logs: one JSON object a line with level, logger and message; secrets masked
in every format; bad options named."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference.logs import secret_values, setup_logging
from tests.local_servers import wait_for

CLI = [sys.executable, "-m", "commands.cli"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging changes the root logger and uvicorn's default config: put them back."""
    from uvicorn.config import LOGGING_CONFIG

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn_config = dict(LOGGING_CONFIG)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    LOGGING_CONFIG.clear()
    LOGGING_CONFIG.update(uvicorn_config)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_gives_one_object_a_line(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream, environ={})
    log = logging.getLogger("inferplane.test")
    log.info("scaled %s to %d", "chat", 3)
    log.debug("not shown at info")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("failed")
    first, second = lines(stream)
    assert first["level"] == "INFO" and first["logger"] == "inferplane.test"
    assert first["message"] == "scaled chat to 3" and "time" in first
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc_info"]


def test_uvicorn_lines_come_out_as_json_too(restore_logging: None) -> None:
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    stream = io.StringIO()
    setup_logging("info", "json", stream=stream, environ={})
    logging.config.dictConfig(LOGGING_CONFIG)  # what uvicorn does when a server starts
    logging.getLogger("uvicorn.error").info("Uvicorn running")
    (line,) = lines(stream)
    assert line["logger"] == "uvicorn.error" and line["message"] == "Uvicorn running"


ENVIRON = {
    "INFERPLANE_WEBHOOK_SECRET": "whsec-0123456789",
    "INFERPLANE_API_KEYS": "key-alpha-1234,key-beta-5678",
    "INFERPLANE_STORE_URL": "postgresql+psycopg://app:pg-pass-4321@db/inferplane",
    "HOOK_ADDRESS": "https://hooks.example.com/T000/B000/tok-abcdef",
    "INFERPLANE_SMTP_PASSWORD_FILE": "/run/secrets/smtp",  # a path, not a secret
    "PATH": "/usr/bin",
}
SECRETS = ["whsec-0123456789", "key-alpha-1234", "key-beta-5678", "pg-pass-4321", "tok-abcdef"]


def test_secret_values_from_names_lists_urls_and_the_configs_env_names() -> None:
    found = secret_values(ENVIRON, names=["HOOK_ADDRESS"])
    assert set(SECRETS) - found == {"tok-abcdef"}  # part of the URL: the whole URL is masked
    assert ENVIRON["HOOK_ADDRESS"] in found
    assert "/run/secrets/smtp" not in found and "/usr/bin" not in found


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_appear(restore_logging: None, log_format: str) -> None:
    stream = io.StringIO()
    setup_logging("debug", log_format, stream=stream, environ=ENVIRON, secret_names=["HOOK_ADDRESS"])
    log = logging.getLogger("inferplane.leaky")
    log.info("connecting to %s", ENVIRON["INFERPLANE_STORE_URL"])
    log.warning("keys %s", ENVIRON["INFERPLANE_API_KEYS"], extra={"hook": ENVIRON["HOOK_ADDRESS"]})
    try:
        raise ValueError(f"bad secret {ENVIRON['INFERPLANE_WEBHOOK_SECRET']}")
    except ValueError:
        log.exception("delivery failed")
    text = stream.getvalue()
    assert text.count("***") >= 3
    for secret in SECRETS:
        assert secret not in text
    if log_format == "json":
        assert len(lines(stream)) == 3


def test_bad_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--log-format must be one of text, json, got 'xml'"):
        setup_logging("info", "xml")
    with pytest.raises(ValueError, match="--log-level must be one of"):
        setup_logging("loud", "text")
    result = subprocess.run(
        [*CLI, "collect", "--config", str(write_config(tmp_path)), "--log-format", "xml"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--log-format must be one of text, json" in result.stderr


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "inferplane.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n"
        "endpoints:\n"
        "  - {name: chat, target: {kind: local, model: m}, price: {gpu_per_hour_usd: 1}}\n"
    )
    return config


def _says_ready(ready: Path) -> bool:
    try:
        return ready.read_text() == "ready\n"
    except FileNotFoundError:
        return False


def test_the_control_plane_logs_one_json_object_a_line(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.write_text("left by the last run\n")  # as a restarted container keeps its /tmp
    command = [*CLI, "control-plane", "--config", str(write_config(tmp_path)), "--ready-file", str(ready)]
    env = {**os.environ, "INFERPLANE_LOG_FORMAT": "json"}  # as inferplane up hands it down
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: _says_ready(ready) or process.poll() is not None, 60, "the control plane")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # closes the stderr pipe here, not in a later test's GC
    assert process.returncode == 0, stderr
    assert not ready.exists()  # a stopped control plane is not ready
    records = [json.loads(line) for line in stderr.splitlines()]
    messages = [r["message"] for r in records if r["logger"] == "commands.control_plane"]
    assert messages[0].startswith("control plane running: collecting from 0 source(s)")
    assert messages[-1] == "control plane stopped"
