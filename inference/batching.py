"""Step-level dynamic batching over the model's forward pass with a KV cache.

One engine thread owns the model. Each turn of its loop it
1. admits waiting requests into free batch slots (when the batch is empty it waits up
   to ``max_wait_s`` so that a burst of arrivals shares one prefill),
2. prefills the newcomers together (left-padded) and samples their first token,
3. merges their KV caches into the running batch (left-padding the shorter side), and
4. runs one decode step for every running sequence.

Finished and cancelled sequences leave the batch after every step, so a short request
never waits for a long one and a client that went away stops costing compute at once.
Left padding is masked out and position ids are per sequence, so padding never changes
what a sequence generates.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from inference.engine import EngineStats, RequestHandle, SamplingParams, TokenEvent
from inference.loading import LoadedModel

__all__ = ["DynamicBatchingEngine"]

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often an idle engine looks at its stop flag


@dataclass
class _Sequence:
    handle: RequestHandle
    prompt_ids: list[int]
    params: SamplingParams
    generated: int = 0


@dataclass
class _Batch:
    """The running sequences and their shared, left-padded KV cache."""

    sequences: list[_Sequence] = field(default_factory=list)
    cache: Any = None  # transformers DynamicCache, [B, heads, T, dim] per layer
    mask: torch.Tensor | None = None  # [B, T] 1 where the cache holds a real token
    next_tokens: torch.Tensor | None = None  # [B] sampled, not yet fed to the model
    positions: torch.Tensor | None = None  # [B] position id of next_tokens

    def __len__(self) -> int:
        return len(self.sequences)


class DynamicBatchingEngine:
    """Continuous (iteration-level) batching of our own; see the module docstring."""

    def __init__(self, model: LoadedModel, max_batch_size: int = 32, max_wait_s: float = 0.005):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._model = model
        self._cache_name = _cache_name(model.model)
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._incoming: queue.Queue[_Sequence] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch = _Batch()
        self.stats = EngineStats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dynamic-batching", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle:
        handle = RequestHandle(asyncio.get_running_loop())
        self._incoming.put(_Sequence(handle, list(prompt_ids), params))
        self.stats.waiting = self._incoming.qsize()
        return handle

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for sequence in self._batch.sequences + self._drain_incoming():
            sequence.handle.push(TokenEvent(None, "error", "the engine was shut down"))

    # -- the engine thread -------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stopping.is_set():
                newcomers = self._admit()
                try:
                    if newcomers:
                        self._prefill(newcomers)
                    if self._batch.sequences:
                        self._decode_step()
                except Exception as error:  # one bad step must not kill the engine
                    log.exception("forward pass failed; failing the %d requests in it", len(self._batch))
                    self._fail_all(newcomers, f"{type(error).__name__}: {error}")
                self._publish_counts()

    def _admit(self) -> list[_Sequence]:
        free = self._max_batch_size - len(self._batch)
        if free <= 0:
            return []
        admitted: list[_Sequence] = []
        if not self._batch.sequences:
            # Idle: block for the first arrival, then give a burst max_wait_s to gather.
            try:
                admitted.append(self._incoming.get(timeout=_POLL_S))
            except queue.Empty:
                return []
            deadline = time.perf_counter() + self._max_wait_s
            while len(admitted) < free and (left := deadline - time.perf_counter()) > 0:
                try:
                    admitted.append(self._incoming.get(timeout=left))
                except queue.Empty:
                    break
        # Busy (or after the burst window): take what is already there, never wait.
        while len(admitted) < free:
            try:
                admitted.append(self._incoming.get_nowait())
            except queue.Empty:
                break
        return [s for s in admitted if not self._finish_if_cancelled(s)]

    def _prefill(self, newcomers: list[_Sequence]) -> None:
        device = self._model.device
        longest = max(len(s.prompt_ids) for s in newcomers)
        pad = self._model.pad_token_id
        ids = torch.full((len(newcomers), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(newcomers), longest), dtype=torch.long)
        for row, sequence in enumerate(newcomers):
            ids[row, longest - len(sequence.prompt_ids) :] = torch.tensor(sequence.prompt_ids)
            mask[row, longest - len(sequence.prompt_ids) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        started = time.perf_counter()
        # logits_to_keep=1: only the last position is sampled, and projecting every prompt
        # position onto the vocabulary would cost more than the layers themselves.
        out = self._model.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        first = _sample(out.logits[:, -1, :], [s.params for s in newcomers])
        ended = time.perf_counter()
        self.stats.record_step(len(newcomers), ended, ended - started)
        incoming = _Batch(newcomers, getattr(out, self._cache_name), mask, first, positions[:, -1] + 1)
        self._batch = _merge(self._batch, self._emit_and_prune(incoming))

    def _decode_step(self) -> None:
        batch = self._batch
        assert batch.mask is not None and batch.next_tokens is not None and batch.positions is not None
        mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch), 1))], dim=1)
        started = time.perf_counter()
        out = self._model.model(
            input_ids=batch.next_tokens[:, None],
            attention_mask=mask,
            position_ids=batch.positions[:, None],
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_name: batch.cache},
        )
        batch.next_tokens = _sample(out.logits[:, -1, :], [s.params for s in batch.sequences])
        ended = time.perf_counter()
        self.stats.record_step(len(batch), ended, ended - started)
        batch.cache, batch.mask, batch.positions = getattr(out, self._cache_name), mask, batch.positions + 1
        self._batch = self._emit_and_prune(batch)

    def _emit_and_prune(self, batch: _Batch) -> _Batch:
        """Hand each sequence of ``batch`` its newest token; return it without the finished."""
        assert batch.next_tokens is not None and batch.positions is not None
        tokens = batch.next_tokens.tolist()
        context = self._model.context_length
        keep: list[int] = []
        for row, (sequence, token) in enumerate(zip(batch.sequences, tokens, strict=True)):
            if self._finish_if_cancelled(sequence):
                continue
            if token in sequence.params.stop_token_ids:
                sequence.handle.push(TokenEvent(None, "stop"))
                continue
            sequence.generated += 1
            sequence.handle.push(TokenEvent(token))
            out_of_room = int(batch.positions[row]) + 1 >= context
            if sequence.generated >= sequence.params.max_new_tokens or out_of_room:
                sequence.handle.push(TokenEvent(None, "length"))
                continue
            keep.append(row)
        return _select(batch, keep) if len(keep) < len(batch) else batch

    def _finish_if_cancelled(self, sequence: _Sequence) -> bool:
        if sequence.handle.cancelled.is_set():
            sequence.handle.push(TokenEvent(None, "cancelled"))
            return True
        return False

    def _fail_all(self, newcomers: list[_Sequence], message: str) -> None:
        failed = {id(s): s for s in self._batch.sequences + newcomers}
        for sequence in failed.values():
            sequence.handle.push(TokenEvent(None, "error", message))
        self._batch = _Batch()

    def _drain_incoming(self) -> list[_Sequence]:
        drained = []
        while True:
            try:
                drained.append(self._incoming.get_nowait())
            except queue.Empty:
                return drained

    def _publish_counts(self) -> None:
        self.stats.running = len(self._batch)
        self.stats.waiting = self._incoming.qsize()


# -- batch arithmetic (pure tensor work, no engine state) -------------------------------


def _sample(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """Greedy for rows with temperature 0, temperature + nucleus sampling for the rest."""
    chosen = logits.argmax(dim=-1)
    sampled_rows = [row for row, p in enumerate(params) if p.temperature > 0]
    if not sampled_rows:
        return chosen
    rows = torch.tensor(sampled_rows, device=logits.device)
    temperature = torch.tensor([params[r].temperature for r in sampled_rows], device=logits.device)
    top_p = torch.tensor([params[r].top_p for r in sampled_rows], device=logits.device)
    probs = torch.softmax(logits[rows].float() / temperature[:, None], dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    # Drop tokens once the mass before them already reaches top_p (the first always stays).
    outside = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p[:, None]
    # Said, and now made so: cumsum's rounding can leave a tiny mass "before" the first
    # token, which a top_p of 5e-324 then dropped, leaving nothing to sample.
    outside[:, 0] = False
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    picks = order.gather(-1, torch.multinomial(sorted_probs, 1)).squeeze(-1)
    chosen[rows] = picks
    return chosen


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge(running: _Batch, incoming: _Batch) -> _Batch:
    """Stack two batches along the batch dimension, aligning their caches on the right."""
    if not incoming.sequences:
        return running
    if not running.sequences:
        return incoming
    assert running.mask is not None and incoming.mask is not None
    length = max(running.mask.shape[1], incoming.mask.shape[1])
    for mine, theirs in zip(running.cache.layers, incoming.cache.layers, strict=True):
        mine.keys = torch.cat([_left_pad(mine.keys, length, 2), _left_pad(theirs.keys, length, 2)])
        mine.values = torch.cat([_left_pad(mine.values, length, 2), _left_pad(theirs.values, length, 2)])
    return _Batch(
        running.sequences + incoming.sequences,
        running.cache,
        torch.cat([_left_pad(running.mask, length, 1), _left_pad(incoming.mask, length, 1)]),
        torch.cat([running.next_tokens, incoming.next_tokens]),  # type: ignore[list-item]
        torch.cat([running.positions, incoming.positions]),  # type: ignore[list-item]
    )


def _select(batch: _Batch, rows: list[int]) -> _Batch:
    """Keep only ``rows``, then drop cache columns that are padding for every survivor."""
    if not rows:
        return _Batch()
    assert batch.mask is not None
    index = torch.tensor(rows, device=batch.mask.device)
    mask = batch.mask[index]
    first_real = int((mask.sum(0) > 0).nonzero()[0])
    for layer in batch.cache.layers:
        layer.keys = layer.keys[index, :, first_real:]
        layer.values = layer.values[index, :, first_real:]
    return _Batch(
        [batch.sequences[r] for r in rows],
        batch.cache,
        mask[:, first_real:],
        batch.next_tokens[index],  # type: ignore[index]
        batch.positions[index],  # type: ignore[index]
    )


def _cache_name(model: Any) -> str:
    """What the model's forward calls its KV cache, in and out: transformers 5.24 renamed
    ``past_key_values`` to ``cache`` (the old name still works there, with a warning)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
