"""The service behind the HTTP routes: admission, limits, cache, generation, drain.

Errors (one tree; the HTTP layer turns each into its status code and an OpenAI-style
error body):

    ServiceError
    ├── BadRequest          400  a limit or a parameter; the message names which
    ├── Unauthorized        401  missing or unknown API key
    ├── QueueFull           429  every batch slot and queue place is taken (Retry-After)
    ├── Draining            503  the replica is draining or not ready yet (Retry-After)
    ├── RequestTimeout      504  the request ran past request_timeout_s
    └── GenerationFailed    500  the engine failed this request (the replica keeps serving)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from inference.cache import CachedResponse, MemoryCache, RedisCache, ResponseCache, cache_key
from inference.engine import Engine, SamplingParams
from inference.engines import make_engine
from inference.loading import LoadedModel, load_model
from inference.metrics import RequestRecord, ServiceMetrics
from inference.model_store import resolve
from inference.settings import ServiceSettings
from inference.text import IncrementalText

__all__ = [
    "BadRequest",
    "Completion",
    "Draining",
    "GenerationFailed",
    "InferenceService",
    "Prepared",
    "QueueFull",
    "RequestTimeout",
    "ServiceError",
    "Unauthorized",
]

# Temperatures below this decode greedily (see prepare).
_GREEDY_BELOW = 1e-4

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status = 500
    kind = "server_error"

    def __init__(self, message: str, param: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.param, self.retry_after = message, param, retry_after


class BadRequest(ServiceError):
    status, kind = 400, "invalid_request_error"


class Unauthorized(ServiceError):
    status, kind = 401, "authentication_error"


class QueueFull(ServiceError):
    status, kind = 429, "rate_limit_error"


class Draining(ServiceError):
    status, kind = 503, "service_unavailable"


class RequestTimeout(ServiceError):
    status, kind = 504, "timeout"


class GenerationFailed(ServiceError):
    status, kind = 500, "server_error"


@dataclass(frozen=True)
class Prepared:
    """A validated request, tokenized and within every limit, ready to generate."""

    prompt_ids: list[int]
    params: SamplingParams
    stop: list[str]
    cache_key: str | None


@dataclass(frozen=True)
class Completion:
    """The end of a generation: why it ended and what it used."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class InferenceService:
    """One replica's serving logic. ``start()`` loads the model; ``ready`` says when done."""

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics | None = None,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.model: LoadedModel | None = None
        self.engine: Engine | None = None
        self.cache = cache if cache is not None else _build_cache(settings)
        self.metrics = metrics or ServiceMetrics(
            {"model": settings.served_name, "endpoint": settings.endpoint, "replica": settings.replica},
            engine_stats=lambda: self.engine.stats if self.engine else None,
            waiting=self.waiting,
        )
        self._api_keys = settings.allowed_api_keys()
        self.in_flight = 0
        self.draining = False
        self.ready = False
        self.cpu_threads = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model (off the event loop), start the engine, warm it up."""
        self.cpu_threads = _use_cpu_threads(self.settings.cpu_threads)
        path = await asyncio.to_thread(resolve, self.settings.model)
        self.model = await asyncio.to_thread(
            load_model, path, self.settings.served_name, self.settings.device
        )
        self.metrics.set_model_load_seconds(self.model.load_seconds)
        self.engine = make_engine(
            self.settings.engine,
            self.model,
            self.settings.max_batch_size,
            self.settings.max_wait_ms / 1000,
        )
        self.engine.start()
        if self.settings.warmup:
            await self._warm_up()
        self.ready = True
        log.info("model %s ready in %.2f s", self.settings.served_name, self.model.load_seconds)

    async def _warm_up(self) -> None:
        # The first forward pass allocates kernels and buffers; paying for it here keeps
        # it out of the first user's latency.
        assert self.engine is not None and self.model is not None
        ids = self.model.tokenizer("Hello")["input_ids"]
        async for _ in self.engine.submit(ids, SamplingParams(max_new_tokens=2)):
            pass

    def begin_drain(self) -> None:
        """Stop admitting new work; requests in flight run to the end."""
        if not self.draining:
            log.info("draining: %d requests in flight", self.in_flight)
        self.draining = True

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no request is in flight; False if the timeout came first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def waiting(self) -> int:
        running = self.engine.stats.running if self.engine else 0
        return max(0, self.in_flight - running)

    # -- admission -------------------------------------------------------------------------

    def check_api_key(self, authorization: str | None) -> None:
        if not self._api_keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        valid = scheme.lower() == "bearer" and any(
            hmac.compare_digest(token.encode(), key.encode()) for key in self._api_keys
        )
        if not valid:
            self.metrics.record_rejection("unauthorized")
            raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place among the admitted requests, or refuse with 503/429."""
        if self.draining or not self.ready:
            self.metrics.record_rejection("draining")
            state = "draining" if self.draining else "still loading its model"
            raise Draining(f"this replica is {state}; retry on another", retry_after=1)
        capacity = self.settings.max_batch_size + self.settings.max_queue
        if self.in_flight >= capacity:
            self.metrics.record_rejection("queue_full")
            raise QueueFull(
                f"server is at capacity ({capacity} requests admitted); retry later",
                retry_after=self._retry_after(),
            )
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    def _retry_after(self) -> int:
        # A rough wait: one batch of work ahead per full batch queued, a second at least.
        return max(1, self.waiting() // max(1, self.settings.max_batch_size))

    # -- preparing requests ----------------------------------------------------------------

    def prepare_chat(self, messages: list[dict[str, str]], **sampling: Any) -> Prepared:
        model = self._model()
        try:
            encoded = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except Exception as error:  # a template error is the request's fault
            raise BadRequest(f"messages could not be formatted for this model: {error}") from error
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return self._prepare(list(ids), "chat", **sampling)

    def prepare_text(self, prompt: str, **sampling: Any) -> Prepared:
        ids = self._model().tokenizer(prompt)["input_ids"]
        return self._prepare(list(ids), "text", **sampling)

    def _prepare(
        self,
        prompt_ids: list[int],
        kind: str,
        max_tokens: int | None,
        temperature: float,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Prepared:
        model, limits = self._model(), self.settings
        max_tokens = max_tokens or min(limits.default_max_tokens, limits.max_tokens_limit)
        if max_tokens > limits.max_tokens_limit:
            self.metrics.record_rejection("limit")
            raise BadRequest(
                f"max_tokens={max_tokens} is above this server's limit of "
                f"{limits.max_tokens_limit} (INFERPLANE_MAX_TOKENS_LIMIT)",
                param="max_tokens",
            )
        if len(prompt_ids) > limits.max_prompt_tokens:
            self.metrics.record_rejection("limit")
            raise BadRequest(
                f"the prompt has {len(prompt_ids)} tokens, above this server's limit of "
                f"{limits.max_prompt_tokens} (INFERPLANE_MAX_PROMPT_TOKENS)",
                param="messages" if kind == "chat" else "prompt",
            )
        if len(prompt_ids) + max_tokens > model.context_length:
            self.metrics.record_rejection("limit")
            raise BadRequest(
                f"prompt ({len(prompt_ids)} tokens) plus max_tokens ({max_tokens}) exceeds the "
                f"model's context length of {model.context_length}",
                param="max_tokens",
            )
        if temperature < _GREEDY_BELOW:
            # logits / 1e-38 overflows to inf and sampling fails; at such a temperature the
            # distribution is the argmax anyway, so decode greedily.
            temperature = 0.0
        params = SamplingParams(max_tokens, temperature, top_p, model.eos_token_ids)
        key = None
        if temperature == 0 and self.settings.cache != "off":
            key = cache_key(self.settings.served_name, kind, prompt_ids, {"max": max_tokens, "stop": stop})
        return Prepared(prompt_ids, params, stop or [], key)

    def _model(self) -> LoadedModel:
        if self.model is None:
            raise Draining("the model is still loading", retry_after=1)
        return self.model

    # -- generation ------------------------------------------------------------------------

    async def generate(self, prepared: Prepared) -> AsyncGenerator[str | Completion]:
        """Yield text deltas, then one ``Completion``. Closing the iterator cancels the work."""
        started = self.clock()
        cached = self._cache_get(prepared)
        if cached is not None:
            yield cached.text
            yield Completion(cached.finish_reason, cached.prompt_tokens, cached.completion_tokens)
            self._record(started, self.clock() - started, len(prepared.prompt_ids), 0, True)
            return
        assert self.engine is not None and self.model is not None
        handle = self.engine.submit(prepared.prompt_ids, prepared.params)
        text = IncrementalText(self.model.tokenizer, prepared.stop)
        generated, first_token_s, finish = 0, None, "stop"
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                async for event in handle:
                    if event.token_id is None:
                        if event.finish_reason == "error":
                            raise GenerationFailed(f"generation failed: {event.error}")
                        finish = event.finish_reason or "stop"
                        break
                    generated += 1
                    first_token_s = first_token_s or self.clock() - started
                    if delta := text.add(event.token_id):
                        yield delta
                    if text.stopped:
                        finish = "stop"
                        break
        except TimeoutError:
            self.metrics.record_rejection("timeout")
            raise RequestTimeout(
                f"the request ran past {self.settings.request_timeout_s:g} s (INFERPLANE_REQUEST_TIMEOUT_S)"
            ) from None
        finally:
            if not handle.finished and not text.stopped:
                self.metrics.record_cancelled()  # the client left or the request timed out
            if not handle.finished:
                handle.cancel()
        if tail := text.finish():
            yield tail
        yield Completion(finish, len(prepared.prompt_ids), generated)
        self._record(started, first_token_s, len(prepared.prompt_ids), generated, False)
        self._cache_put(prepared, CachedResponse(text.output, len(prepared.prompt_ids), generated, finish))

    def _cache_get(self, prepared: Prepared) -> CachedResponse | None:
        if prepared.cache_key is None:
            return None
        hit = self.cache.get(prepared.cache_key)
        self.metrics.record_cache(hit is not None)
        return hit

    def _cache_put(self, prepared: Prepared, response: CachedResponse) -> None:
        if prepared.cache_key is not None and response.finish_reason in ("stop", "length"):
            self.cache.put(prepared.cache_key, response)

    def _record(self, started: float, ttft: float | None, prompt: int, generated: int, hit: bool) -> None:
        latency = self.clock() - started
        self.metrics.record_request(RequestRecord(latency, ttft, prompt, generated, hit))


def _build_cache(settings: ServiceSettings) -> ResponseCache:
    if settings.cache == "redis":
        assert settings.redis_url is not None
        return RedisCache(settings.redis_url.get_secret_value(), settings.cache_ttl_s)
    return MemoryCache(settings.cache_size)


def _use_cpu_threads(threads: int) -> int:
    """Set torch's CPU thread count (0 keeps its default); returns the count in use.

    Replicas sharing a machine must split its cores: each torch defaults to one thread a
    core, and several replicas doing so spin against each other (on 2 cores, two
    replicas at the default made 1.3 tokens/s where one thread each made 15-21).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())
