"""Secrets: recognised when typed into the file, resolved from the environment or a file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError

__all__ = ["is_secret_key", "resolve_secret"]

# Key names that hold a secret's value. "*_env" and "*_file" keys hold where the secret
# is (an env var name, a path), which is what the file may say.
_SECRET_WORDS = ("api_key", "password", "passwd", "client_secret", "secret", "token", "connection_string")
_SECRET_KEYS = frozenset(_SECRET_WORDS) | {"access_key", "account_key", "sas_token", "bearer_token"}


def is_secret_key(key: str) -> bool:
    """Whether a YAML key looks like it holds a secret's value (``api_key``, ``db_password``...)."""
    key = key.lower()
    if key.endswith(("_env", "_file")):
        return False
    return key in _SECRET_KEYS or key.endswith(tuple(f"_{word}" for word in _SECRET_WORDS))


def resolve_secret(
    env_name: str | None, file_path: str | Path | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The secret from the environment variable ``env_name``, else from ``file_path``.

    Returns None when neither is configured (the secret is optional). Raises ConfigError
    naming the variable or the path, never a value, when a configured one is missing or
    empty. A file's trailing newline is dropped (``echo`` adds one). Pass ``environ`` in
    tests instead of touching ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    if env_name:
        value = environ.get(env_name)
        if value:
            return value
        if file_path is None:
            raise ConfigError(
                [f"environment variable {env_name} is not set (or empty); set it to the secret"]
            )
    if file_path is None:
        return None
    path = Path(file_path)
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read the secret file: {error.strerror}"]) from error
    if not value:
        raise ConfigError([f"{path}: the secret file is empty"])
    return value
