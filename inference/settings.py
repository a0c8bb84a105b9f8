"""Settings of one inference service replica, from arguments or ``INFERPLANE_*`` variables.

Every field can be set in the environment with the ``INFERPLANE_`` prefix (for example
``INFERPLANE_MAX_BATCH_SIZE=16``). API keys are secrets: they come only from
``INFERPLANE_API_KEYS`` (comma-separated) or from the file named by
``INFERPLANE_API_KEYS_FILE`` (one key a line), and are never logged or shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.model_store import DEFAULT_MODEL

__all__ = ["ServiceSettings", "describe_settings_error"]


class ServiceSettings(BaseSettings):
    """How a replica serves: model, batching, admission limits, cache, keys."""

    model_config = SettingsConfigDict(env_prefix="INFERPLANE_", extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="known model name, local directory or HF id")
    served_model_name: str | None = Field(None, description="name shown in /v1/models")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    engine: Literal["dynamic", "continuous"] = "dynamic"
    cpu_threads: int = Field(
        0, ge=0, le=1024, description="torch's CPU threads; 0: its default (one per core)"
    )
    endpoint: str = Field("default", description="endpoint label on every metric")
    replica: str = Field("0", description="replica label on every metric")

    max_batch_size: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, description="how long a burst may gather")
    max_queue: int = Field(256, ge=0, description="requests waiting beyond the batch; then 429")
    max_prompt_tokens: int = Field(4096, ge=1)
    max_tokens_limit: int = Field(1024, ge=1, description="largest max_tokens a request may ask")
    default_max_tokens: int = Field(256, ge=1, description="when a request names none (capped by the limit)")
    request_timeout_s: float = Field(300.0, gt=0)
    drain_timeout_s: float = Field(600.0, gt=0)
    warmup: bool = True

    cache: Literal["memory", "redis", "off"] = "memory"
    cache_size: int = Field(1024, ge=1, description="entries in the in-memory LRU")
    cache_ttl_s: int = Field(3600, ge=1, description="lifetime of a Redis cache entry")
    redis_url: SecretStr | None = None

    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None

    @model_validator(mode="after")
    def _cache_needs_redis_url(self) -> ServiceSettings:
        if self.cache == "redis" and self.redis_url is None:
            raise ValueError("cache='redis' needs redis_url (INFERPLANE_REDIS_URL)")
        return self

    def allowed_api_keys(self) -> frozenset[str]:
        """The accepted Bearer keys; empty means the API is open."""
        keys: set[str] = set()
        if self.api_keys is not None:
            keys.update(k.strip() for k in self.api_keys.get_secret_value().split(","))
        if self.api_keys_file is not None:
            keys.update(line.strip() for line in self.api_keys_file.read_text().splitlines())
        keys.discard("")
        return frozenset(keys)

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model


def describe_settings_error(error: ValidationError) -> str:
    """One line naming each bad setting with the variable that sets it."""
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        where = f"{field} (INFERPLANE_{field.upper()}): " if field else ""
        problems.append(f"{where}{item['msg']}")
    return "invalid service settings: " + "; ".join(problems)
