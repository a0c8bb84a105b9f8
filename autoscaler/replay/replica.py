"""One simulated replica: continuous batching of prefills and decode steps (pure).

Within a tick the replica first prefills the requests it admitted (one at a time, in
order, at the capacity's prefill rate), then spends the rest of the tick on decode steps
for the sequences it holds. It is busy whenever it prefills or decodes, so its busy
time over an interval is what nvidia-smi reports as utilization.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from autoscaler.replay.capacity import Capacity

__all__ = ["Replica", "Requests", "Times"]


@dataclass(frozen=True)
class Requests:
    """The trace as parallel tuples (index = request id), plus where results go."""

    arrival_s: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    generated_tokens: tuple[int, ...]


class Times:
    """A time per request, ``inf`` until known. :meth:`fork` gives a copy whose writes stay
    its own and that reads the rest from this one, at no cost per request: the oracle
    forks the simulation a few times every interval, and copying a week-long trace's
    times each time would make it quadratic. A fork must be dropped before this one is
    written again (the oracle's trials are)."""

    def __init__(self, n: int) -> None:
        self._base = [math.inf] * n
        self._own: dict[int, float] | None = None

    def fork(self) -> Times:
        copy = object.__new__(Times)
        copy._base = self._base
        copy._own = dict(self._own) if self._own is not None else {}
        return copy

    def __getitem__(self, i: int) -> float:
        own = self._own
        if own is not None and i in own:
            return own[i]
        return self._base[i]

    def __setitem__(self, i: int, value: float) -> None:
        if self._own is None:
            self._base[i] = value
        else:
            self._own[i] = value

    def __len__(self) -> int:
        return len(self._base)

    def __iter__(self) -> Iterator[float]:
        return (self[i] for i in range(len(self._base))) if self._own else iter(self._base)


@dataclass
class Replica:
    """A replica billed from ``start_s``, serving from ``ready_s``; ``draining`` admits nothing."""

    start_s: float
    ready_s: float
    draining: bool = False
    prefill: deque[int] = field(default_factory=deque)
    head_done: float = 0.0  # prompt tokens of prefill[0] already processed
    prefill_tokens: int = 0  # prompt tokens of every request in ``prefill`` (a running sum)
    decoding: list[tuple[float, int]] = field(default_factory=list)  # heap of (finish step, id)
    last_finish: float = 0.0  # the largest finish step in ``decoding`` (popped last)
    steps: float = 0.0  # decode steps run so far (fractional: a fluid model within a tick)
    kv_tokens: int = 0
    busy_s: float = 0.0  # since the last scrape
    tokens_in: int = 0  # prompt tokens prefilled since the last scrape
    tokens_out: float = 0.0  # tokens generated since the last scrape (a fluid count)

    def clone(self) -> Replica:
        copy = Replica(self.start_s, self.ready_s, self.draining, deque(self.prefill), self.head_done)
        copy.decoding, copy.last_finish, copy.steps = list(self.decoding), self.last_finish, self.steps
        copy.kv_tokens, copy.busy_s = self.kv_tokens, self.busy_s
        copy.prefill_tokens = self.prefill_tokens
        copy.tokens_in, copy.tokens_out = self.tokens_in, self.tokens_out
        return copy

    @property
    def outstanding(self) -> int:
        return len(self.prefill) + len(self.decoding)

    @property
    def prefill_left(self) -> float:
        """Prompt tokens admitted and not yet prefilled (the head's remainder included):
        kept as a running sum, not summed per routing pass (a long queue made that the
        replay's cost under least-prefill routing)."""
        return self.prefill_tokens - self.head_done

    @property
    def queued(self) -> int:
        """Admitted requests whose prefill has not begun (the head is being prefilled)."""
        return max(0, len(self.prefill) - 1)

    def has_room(self, capacity: Capacity, tokens: int) -> bool:
        if self.draining or self.outstanding >= capacity.max_concurrent_sequences:
            return False
        limit = capacity.kv_cache_tokens
        return limit is None or self.kv_tokens + tokens <= limit or self.outstanding == 0

    def admit(self, request: int, tokens: int, prompt_tokens: int) -> None:
        """Queue ``request`` for prefill; ``tokens`` (prompt and generated) hold KV cache."""
        self.prefill.append(request)
        self.kv_tokens += tokens
        self.prefill_tokens += prompt_tokens

    def advance(
        self, t: float, dt: float, cap: Capacity, reqs: Requests, first_token: Times, done: Times
    ) -> None:
        """Run the tick ``[t, t + dt)``, writing first-token and completion times."""
        batch = len(self.decoding)
        prefill_s, used, joined = 0.0, 0.0, []
        while self.prefill and used < dt:
            i = self.prefill[0]
            start = max(used, reqs.arrival_s[i] - t)  # routed at the tick start, arrives within it
            if start >= dt:
                break
            need = (reqs.prompt_tokens[i] - self.head_done) / cap.prefill_tokens_per_s
            if need > dt - start:
                self.head_done += (dt - start) * cap.prefill_tokens_per_s
                prefill_s += dt - start
                break
            self.prefill.popleft()
            self.prefill_tokens -= reqs.prompt_tokens[i]
            self.head_done, used = 0.0, start + need
            prefill_s += need
            first_token[i] = t + used + cap.decode_step_s(batch + 1)
            joined.append(i)
            self.tokens_in += reqs.prompt_tokens[i]
            self.tokens_out += 1
        decode_s = self._decode(t + prefill_s, dt - prefill_s, batch, cap, reqs, done)
        self.busy_s += prefill_s + decode_s
        for i in joined:
            extra = max(reqs.generated_tokens[i], 1) - 1  # the first token came with the first step
            if extra == 0:
                self._finish(i, first_token[i], reqs, done)
            else:
                finish = self.steps + extra
                self.last_finish = max(self.last_finish, finish) if self.decoding else finish
                heapq.heappush(self.decoding, (finish, i))

    def _decode(
        self, t0: float, budget: float, batch: int, cap: Capacity, reqs: Requests, done: Times
    ) -> float:
        if not self.decoding or budget <= 0:
            return 0.0
        step = cap.decode_step_s(batch)
        begin = self.steps
        ran = min(budget / step, self.last_finish - begin)
        self.steps = begin + ran
        self.tokens_out += ran * batch
        while self.decoding and self.decoding[0][0] <= self.steps + 1e-9:
            finish, i = heapq.heappop(self.decoding)
            self._finish(i, t0 + (finish - begin) * step, reqs, done)
        return ran * step

    def _finish(self, i: int, at: float, reqs: Requests, done: Times) -> None:
        done[i] = at
        self.kv_tokens -= reqs.prompt_tokens[i] + reqs.generated_tokens[i]
