"""Continuous batching on top of transformers' own ``ContinuousBatchingManager`` (5.23).

``model.init_continuous_batching`` returns a manager whose thread packs prefill chunks and
decode steps of every live request into one forward pass over a paged KV cache. ``submit``
calls ``manager.add_request(..., streaming=True)``; one dispatcher thread of ours reads every
streamed ``GenerationOutput`` with ``manager.get_result``, pushes the new tokens to the
request's ``RequestHandle``, and turns cancelled handles into ``manager.cancel_request``.

Limitations found:
- Greedy vs sampling is one manager-wide switch (``do_sample``). The manager samples, with
  per-request temperature/top-k/top-p and greedy as ``top_k=1``; an all-greedy batch runs plain
  argmax instead (``_scheduled_batch``), a mixed batch pays the sampling cost for every row.
- No public per-step hook: step stats and that greedy switch wrap the private
  ``_generation_step`` and read batch-processor internals. If those move, generation stays
  correct, but step stats stay empty and greedy is slower.
- The manager never reports a cancelled request: the "cancelled" event comes from us. Any
  exception in a forward pass ends its loop and fails everything in it; we start a fresh loop.
- ``max_wait_s`` is unused (the manager schedules new requests at its next step);
  ``max_batch_size`` caps the requests per forward pass. ``stats.running`` counts requests
  that produced a token, ``waiting`` the rest (prefilling included).
- On CPU the manager would size its cache from host RAM (psutil) with an 8192-token step whose
  attention masks grow with the cache, so both are set explicitly. With SDPA each step attends
  over the packed batch: attention cost grows with batch size x live tokens. The manager may
  switch the model's attention (``eager`` to ``paged|eager``; flash on GPU) until ``close``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from transformers import ContinuousBatchingConfig, GenerationConfig

from inference.engine import EngineStats, RequestHandle, SamplingParams, TokenEvent
from inference.loading import LoadedModel

__all__ = ["ContinuousBatchingEngine"]

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how long the dispatcher waits for output before looking at cancellations
_PAGE_SIZE = 64  # tokens per KV page: small pages waste less cache on short chat requests
_CPU_TOKENS_PER_REQUEST = 1024  # KV cache per batch slot on CPU
_CPU_MAX_BATCH_TOKENS = 512  # query tokens per forward pass on CPU; longer prefills are chunked


@dataclass
class _Request:
    handle: RequestHandle
    stop_token_ids: frozenset[int]
    sent: int = 0  # generated tokens already pushed to the handle


class ContinuousBatchingEngine:
    """transformers' continuous batching as an ``Engine``; see the module docstring."""

    def __init__(self, model: LoadedModel, max_batch_size: int = 32, max_wait_s: float = 0.005):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._model = model
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s  # unused, see the module docstring
        self._manager: Any = None
        self._requests: dict[str, _Request] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self.stats = EngineStats()

    def start(self) -> None:
        # Placeholder values: they make transformers build the temperature, top-k and top-p
        # processors, whose values every request then overrides.
        sampling = {"do_sample": True, "temperature": 0.7, "top_k": 50, "top_p": 0.9}
        eos, pad = sorted(self._model.eos_token_ids) or None, self._model.pad_token_id
        generation_config = GenerationConfig(**sampling, eos_token_id=eos, pad_token_id=pad)
        manager = self._model.model.init_continuous_batching(
            generation_config=generation_config, continuous_batching_config=self._cb_config()
        )
        # Allocates the cache now, so a bad size fails here rather than in the manager's thread.
        manager.warmup()
        self._wrap_step(manager)
        manager.start()
        self._manager = manager
        self._dispatcher = threading.Thread(target=self._dispatch, name="cb-dispatch", daemon=True)
        self._dispatcher.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle:
        handle = RequestHandle(asyncio.get_running_loop())
        if self._manager is None:
            raise RuntimeError("ContinuousBatchingEngine.submit called before start()")
        vocab = self._model.model.config.vocab_size
        # A bad id would raise inside the manager's loop and fail every request in flight.
        if not prompt_ids or not all(isinstance(t, int) and 0 <= t < vocab for t in prompt_ids):
            handle.push(TokenEvent(None, "error", f"prompt must be token ids in [0, {vocab})"))
            return handle
        # Past the context the position embeddings run out: end there with "length".
        max_new_tokens = min(params.max_new_tokens, self._model.context_length - len(prompt_ids))
        if max_new_tokens <= 0:
            handle.push(TokenEvent(None, "length"))
            return handle
        request_id = f"cb-{next(self._ids)}"
        # Held across add_request so the dispatcher cannot cancel an id the manager has not
        # queued yet: the manager would drop that cancel and run the request to the end.
        with self._lock:
            self._requests[request_id] = _Request(handle, params.stop_token_ids)
            accepted = self._manager.add_request(
                list(prompt_ids),
                request_id=request_id,
                max_new_tokens=max_new_tokens,
                streaming=True,
                eos_token_id=sorted(params.stop_token_ids),
                **_processor_kwargs(params, vocab),
            )
            if accepted is None:
                del self._requests[request_id]
        if accepted is None:
            handle.push(TokenEvent(None, "error", "the continuous batching loop is not running"))
        return handle

    def close(self) -> None:
        self._stopping.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=30)
        if self._manager is not None:
            # hard_stop: what is still pending is failed below, not generated to the end.
            self._manager.stop(block=True, timeout=30, hard_stop=True)
            self._manager.destroy()
            self._manager = None
        with self._lock:
            leftovers, self._requests = list(self._requests.values()), {}
        for request in leftovers:
            self._push("", request.handle, TokenEvent(None, "error", "the engine was shut down"))
        self._publish_counts()

    def _cb_config(self) -> ContinuousBatchingConfig:
        config = ContinuousBatchingConfig(page_size=_PAGE_SIZE, per_request_processors=True)
        config.max_requests_per_batch = self._max_batch_size
        if self._model.device.type == "cpu":
            # Room for one full-context request at least: a request that cannot fit in an empty
            # cache raises inside the manager's loop and fails everything in flight.
            tokens = max(self._model.context_length, self._max_batch_size * _CPU_TOKENS_PER_REQUEST)
            config.num_blocks = math.ceil(tokens / _PAGE_SIZE)
            config.max_batch_tokens = max(_CPU_MAX_BATCH_TOKENS, self._max_batch_size)
        return config

    def _wrap_step(self, manager: Any) -> None:
        step = getattr(manager, "_generation_step", None)
        if step is None:
            log.warning("transformers has no _generation_step: no step stats, slower greedy")
            return

        def wrapped_step() -> None:
            processor = manager.batch_processor
            size, greedy = _scheduled_batch(processor)
            if greedy:
                _set_sampling(processor, False)
            started = time.perf_counter()
            try:
                step()
            finally:
                if greedy:
                    _set_sampling(processor, True)
            ended = time.perf_counter()
            self.stats.record_step(size, ended, ended - started)

        manager._generation_step = wrapped_step

    def _dispatch(self) -> None:
        manager = self._manager
        while not self._stopping.is_set():
            try:
                output = manager.get_result(timeout=_POLL_S)
                if output is not None:
                    self._route(output)
                elif not manager.is_running() and not self._stopping.wait(_POLL_S):
                    log.error("the continuous batching loop stopped; starting a fresh one")
                    manager.start()
                self._reap_cancelled()
                self._publish_counts()
            except Exception:  # a dead dispatcher would hang every request
                log.exception("continuous batching dispatcher failed")

    def _route(self, output: Any) -> None:
        with self._lock:
            request = self._requests.get(output.request_id)
        if request is None:
            return  # already cancelled: its last in-flight token is dropped
        if request.handle.cancelled.is_set():
            self._cancel(output.request_id)
            return
        if output.error is not None:
            self._forget(output.request_id)
            self._push(output.request_id, request.handle, TokenEvent(None, "error", output.error))
            return
        tokens: list[int] = output.generated_tokens
        finished = output.is_finished()
        # As in the dynamic engine, a stop token ends the stream without being emitted.
        stopped = finished and bool(tokens) and tokens[-1] in request.stop_token_ids
        for token in tokens[request.sent : len(tokens) - int(stopped)]:
            self._push(output.request_id, request.handle, TokenEvent(token))
        request.sent = len(tokens)
        if finished:
            self._forget(output.request_id)
            reason = "stop" if stopped else "length"
            self._push(output.request_id, request.handle, TokenEvent(None, reason))

    def _reap_cancelled(self) -> None:
        with self._lock:
            cancelled = [rid for rid, r in self._requests.items() if r.handle.cancelled.is_set()]
        for request_id in cancelled:
            self._cancel(request_id)

    def _cancel(self, request_id: str) -> None:
        request = self._forget(request_id)
        if request is not None:
            self._manager.cancel_request(request_id)
            self._push(request_id, request.handle, TokenEvent(None, "cancelled"))

    def _push(self, request_id: str, handle: RequestHandle, event: TokenEvent) -> None:
        try:
            handle.push(event)
        except RuntimeError:  # the submitter's event loop is closed: nobody is listening
            if self._forget(request_id) is not None:
                self._manager.cancel_request(request_id)

    def _forget(self, request_id: str) -> _Request | None:
        with self._lock:
            return self._requests.pop(request_id, None)

    def _publish_counts(self) -> None:
        with self._lock:
            running = sum(1 for r in self._requests.values() if r.sent > 0)
            total = len(self._requests)
        self.stats.running, self.stats.waiting = running, total - running


def _processor_kwargs(params: SamplingParams, vocab_size: int) -> dict[str, Any]:
    """Per-request values for the manager's temperature, top-k and top-p processors."""
    if params.temperature <= 0:
        return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}  # only the argmax survives
    temperature, top_p = float(params.temperature), float(params.top_p)  # the manager checks types
    return {"temperature": temperature, "top_k": vocab_size, "top_p": top_p}


def _scheduled_batch(processor: Any) -> tuple[int, bool]:
    """Size of the batch about to run, and whether it may skip sampling (all greedy).

    Sampling mode sorts the vocabulary twice and draws from it for every row: on CPU that
    costs about half a forward pass of a 135M model at 32 rows. Never skipped under CUDA
    graphs or compile (``pad_inputs``), which have the sampling path baked in.
    """
    try:
        io = processor.inputs_and_outputs
        io = io.io_pairs[io.current_pair].host_io if hasattr(io, "io_pairs") else io
        batch = io.requests_in_batch
        runner, processors = processor.model_runner, processor.logit_processor
        can_switch = not runner.pad_inputs and runner.do_sample and processors.do_processing
        greedy = can_switch and all(f.state.logit_processor_kwargs.get("top_k") == 1 for f in batch)
        return len(batch), greedy
    except AttributeError:  # transformers moved its internals: stay correct, just slower
        return 0, False


def _set_sampling(processor: Any, on: bool) -> None:
    processor.model_runner.do_sample = processor.logit_processor.do_processing = on
