"""The response cache: in memory by default, and shared through the real Redis."""

from __future__ import annotations

import httpx
import pytest
import redis

from inference.cache import CachedResponse, MemoryCache, RedisCache
from tests.conftest import ServiceProcess, free_port, start_service

REDIS_URL = "redis://127.0.0.1:6379/13"


def ask(url: str, prompt: str, temperature: float = 0.0) -> dict:
    reply = httpx.post(
        url + "/v1/completions",
        timeout=60,
        json={"prompt": prompt, "max_tokens": 12, "temperature": temperature},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_deterministic_requests_are_answered_from_memory(service: ServiceProcess) -> None:
    hits = service.metric("inferplane_cache_hits_total")
    generated = service.metric("inferplane_generated_tokens_total")
    first = ask(service.url, "The three primary colours are")
    second = ask(service.url, "The three primary colours are")
    assert second["choices"][0]["text"] == first["choices"][0]["text"]
    assert second["usage"] == first["usage"]
    assert service.metric("inferplane_cache_hits_total") == hits + 1
    # Only the first answer cost compute.
    assert (
        service.metric("inferplane_generated_tokens_total") == generated + first["usage"]["completion_tokens"]
    )


def test_sampled_requests_never_touch_the_cache(service: ServiceProcess) -> None:
    hits = service.metric("inferplane_cache_hits_total")
    misses = service.metric("inferplane_cache_misses_total")
    ask(service.url, "A random word:", temperature=1.0)
    ask(service.url, "A random word:", temperature=1.0)
    assert service.metric("inferplane_cache_hits_total") == hits
    assert service.metric("inferplane_cache_misses_total") == misses


def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    entry = CachedResponse("x", 1, 1, "stop")
    cache.put("a", entry)
    cache.put("b", entry)
    assert cache.get("a") == entry  # a is now the most recent
    cache.put("c", entry)
    assert cache.get("b") is None and cache.get("a") == entry and cache.get("c") == entry


@pytest.fixture
def clean_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def test_redis_cache_is_shared_by_replicas(tmp_path, clean_redis: redis.Redis) -> None:
    first = start_service(tmp_path, cache="redis", redis_url=REDIS_URL, cache_ttl_s=600, replica="a")
    second = start_service(tmp_path, cache="redis", redis_url=REDIS_URL, replica="b")
    try:
        answer = ask(first.url, "The largest planet is")
        keys = list(clean_redis.scan_iter("inferplane:response:*"))
        assert len(keys) == 1
        assert 0 < clean_redis.ttl(keys[0]) <= 600
        again = ask(second.url, "The largest planet is")
        assert again["choices"][0]["text"] == answer["choices"][0]["text"]
        assert second.metric("inferplane_cache_hits_total") == 1
        assert second.metric("inferplane_generated_tokens_total") == 0, "served without the model"
    finally:
        first.stop()
        second.stop()


def test_an_unreachable_redis_counts_errors_and_serves_anyway() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0")
    cache.put("k", CachedResponse("x", 1, 1, "stop"))
    assert cache.get("k") is None
    assert cache.errors == 2
