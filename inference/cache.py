"""Response cache for deterministic requests (temperature 0).

Two stores behind one small interface: an in-memory LRU (the default) and Redis (shared
by every replica, entries expire after a TTL). A cache that fails never fails a
request: the error is counted and the request is served by the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = [
    "CachedResponse",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_key",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class ResponseCache(Protocol):
    errors: int

    def get(self, key: str) -> CachedResponse | None: ...

    def put(self, key: str, value: CachedResponse) -> None: ...


def cache_key(model: str, kind: str, prompt_ids: list[int], params: dict[str, Any]) -> str:
    """A key over what decides a deterministic output: model, prompt tokens, parameters.

    Keying on token ids rather than raw text makes prompts that differ only in ways the
    chat template normalizes hit the same entry.
    """
    material = json.dumps([model, kind, prompt_ids, params], sort_keys=True)
    return "inferplane:response:" + hashlib.sha256(material.encode()).hexdigest()


class MemoryCache:
    """A bounded least-recently-used cache in this process."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._max_entries = max_entries
        self.errors = 0

    def get(self, key: str) -> CachedResponse | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: CachedResponse) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class RedisCache:
    """Entries in Redis, shared by replicas; each expires after ``ttl_s``."""

    def __init__(self, url: str, ttl_s: int = 3600, client: Any = None) -> None:
        import redis

        self._client = client or redis.Redis.from_url(url, socket_timeout=0.5)
        self._ttl_s = ttl_s
        self.errors = 0

    def get(self, key: str) -> CachedResponse | None:
        try:
            raw = self._client.get(key)
        except Exception as error:  # noqa: BLE001 - the model can still answer; counted below
            self._note(error)
            return None
        return CachedResponse(**json.loads(raw)) if raw else None

    def put(self, key: str, value: CachedResponse) -> None:
        try:
            self._client.set(key, json.dumps(asdict(value)), ex=self._ttl_s)
        except Exception as error:  # noqa: BLE001
            self._note(error)

    def _note(self, error: Exception) -> None:
        self.errors += 1
        # The URL may hold a password: name the error type only.
        log.warning("redis cache unavailable (%s); serving from the model", type(error).__name__)
