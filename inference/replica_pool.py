"""The router's pool of local replicas: start, pick, drain, replace.

All state lives on the router's event loop (no locks); starting and stopping a replica
block, so they run in worker threads. The replica factory is injected: a blocking
callable that starts one replica and returns an object with ``url`` and ``stop()``
(``inference.replica_process.start_replica`` in production, small in-process HTTP
servers in tests).

Life of a replica: ``starting`` -> ``ready`` -> ``draining`` (no new requests; waits
until its outstanding requests finished; a scale-out meanwhile takes it back to
``ready``) -> stopped and removed. A replica found dead
(connection refused) is removed at once, counted, and the pool starts another to keep
the desired count.

Picking: the ready replica with the fewest outstanding requests (ties take turns). With
``routing="least-prefill"``, the one with the fewest prompt tokens sent and not yet
answered by a first byte comes first: a short prompt then does not queue behind another
replica's long prefill. The router estimates those tokens from the request body and
counts them until the replica's first byte, which for a streamed answer comes with the
first token and for a whole one at its end.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

__all__ = [
    "ROUTINGS",
    "HoldQueueFull",
    "NoReplicaReady",
    "Replica",
    "ReplicaFactory",
    "ReplicaHandle",
    "ReplicaPool",
    "Routing",
    "process_factory",
    "routing_named",
]

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "draining"]
Routing = Literal["fewest-requests", "least-prefill"]
ROUTINGS: tuple[Routing, ...] = ("fewest-requests", "least-prefill")


def routing_named(value: str) -> Routing:
    """``value`` as a routing, or ValueError naming the choices (the router's settings,
    its CLI and the replay all check through here)."""
    for routing in ROUTINGS:
        if value == routing:
            return routing
    raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}, got {value!r}")


class ReplicaHandle(Protocol):
    """A started replica: where it listens, and how to stop it (gracefully)."""

    @property
    def url(self) -> str: ...

    def stop(self) -> object: ...


ReplicaFactory = Callable[[], ReplicaHandle]


class NoReplicaReady(RuntimeError):
    """No replica became ready within the hold timeout (or the pool is closing)."""


class HoldQueueFull(RuntimeError):
    """No replica is ready and ``max_held`` requests are already held: refuse, do not queue."""


@dataclass(eq=False)
class Replica:
    """One pool member; ``handle`` is None while it is starting."""

    id: int
    state: State = "starting"
    handle: ReplicaHandle | None = None
    outstanding: int = 0
    prefill_tokens: int = 0  # estimated prompt tokens of requests not answered a first byte yet
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    drains: int = 0  # times it was taken back from draining (a stale drain task then stops)

    @property
    def url(self) -> str | None:
        return self.handle.url if self.handle else None

    @property
    def name(self) -> str:
        """The metric label: the port (the CLI labels each child's own metrics the same)."""
        port = httpx.URL(self.url).port if self.url else None
        return str(port) if port else f"starting-{self.id}"


@dataclass
class PoolCounts:
    """Failures the exporter reads: replicas that crashed, starts that failed."""

    crashed: int = 0
    start_failed: int = 0


class ReadySeconds:
    """Ready replica-seconds since the pool began: what a self-hosted endpoint is priced
    on, counted at every change of the ready count rather than sampled (a reading every
    few seconds misses the moments between readings). ``clock``: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._total = 0.0
        self._count = 0
        self._since = clock()
        self.created = time.time()  # exported as the counter's _created (unix seconds)

    def changed(self, ready: int) -> None:
        """The ready count is now ``ready``: the time since the last change is charged at
        the count that held during it."""
        now = self._clock()
        self._total += self._count * (now - self._since)
        self._count, self._since = ready, now

    def total(self) -> float:
        return self._total + self._count * (self._clock() - self._since)


class ReplicaPool:
    """Keeps ``desired`` replicas running and hands out the least busy ready one."""

    def __init__(
        self,
        factory: ReplicaFactory,
        restart_delay_s: float = 1.0,
        max_held: int = 256,
        routing: Routing = "fewest-requests",
    ) -> None:
        self._factory = factory
        self.routing = routing
        self._max_held = max_held
        self._restart_delay_s = restart_delay_s
        self._ids = itertools.count()
        self._turn = itertools.count()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.replicas: list[Replica] = []
        self.desired = 0
        self.held = 0  # requests waiting in acquire() for a ready replica
        self.closing = False
        self.counts = PoolCounts()
        self.ready_seconds = ReadySeconds()

    @property
    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == "ready"]

    def scale_to(self, desired: int) -> None:
        """Set the desired count; starting and draining happen in background tasks."""
        self.desired = desired
        self._reconcile()

    async def acquire(
        self, timeout_s: float, exclude: Collection[Replica] = (), prompt_tokens: int = 0
    ) -> Replica:
        """The ready replica with the fewest outstanding requests (ties: round robin);
        under "least-prefill" the fewest prompt tokens awaiting a first byte first.
        ``prompt_tokens`` (the request's, estimated) count against the replica until
        :meth:`first_byte` or :meth:`release`.

        While none is ready the caller is held until one is, or ``NoReplicaReady``; when
        ``max_held`` callers are held already, ``HoldQueueFull`` at once (each held
        request keeps its body in memory: an unbounded queue is unbounded memory)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        held = False
        try:
            while True:
                if self.closing:
                    raise NoReplicaReady("the router is shutting down")
                candidates = [r for r in self.ready if r not in exclude] or self.ready
                if candidates:
                    return self._take(candidates, prompt_tokens)
                if not held:
                    if self.held >= self._max_held:
                        raise HoldQueueFull(f"{self.held} requests are already waiting for a ready replica")
                    held, self.held = True, self.held + 1
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), deadline - loop.time())
                except TimeoutError:
                    raise NoReplicaReady(f"no replica became ready within {timeout_s:g} s") from None
        finally:
            if held:
                self.held -= 1

    def _take(self, candidates: list[Replica], prompt_tokens: int) -> Replica:
        by_prefill = self.routing == "least-prefill"

        def load(r: Replica) -> tuple[int, int]:
            return (r.prefill_tokens if by_prefill else 0, r.outstanding)

        fewest = min(load(r) for r in candidates)
        ties = [r for r in candidates if load(r) == fewest]
        replica = ties[next(self._turn) % len(ties)]
        replica.outstanding += 1
        replica.prefill_tokens += prompt_tokens
        replica.idle.clear()
        return replica

    def first_byte(self, replica: Replica, prompt_tokens: int) -> None:
        """``replica`` answered a request's first byte: its prompt is prefilled."""
        replica.prefill_tokens = max(0, replica.prefill_tokens - prompt_tokens)

    def release(self, replica: Replica, prompt_tokens: int = 0) -> None:
        """A request to ``replica`` finished (whatever its outcome); ``prompt_tokens``:
        what it still counted awaiting a first byte (none once :meth:`first_byte` ran)."""
        self.first_byte(replica, prompt_tokens)
        replica.outstanding -= 1
        if replica.outstanding == 0:
            replica.idle.set()

    def crashed(self, replica: Replica) -> None:
        """``replica`` refused a connection: drop it, count it, start a replacement."""
        if replica not in self.replicas:
            return  # another request found it dead first
        log.warning("replica %s is gone (connection refused); replacing it", replica.url)
        self.counts.crashed += 1
        self._remove(replica)
        self._spawn(asyncio.to_thread(_stop_quietly, replica.handle))
        self._reconcile()

    async def probe(self, client: httpx.AsyncClient) -> None:
        """Ask each ready replica's /health; one that refuses the connection crashed.

        Only a refused connection counts: a busy replica may answer slowly."""
        for replica in self.ready:
            try:
                await client.get(f"{replica.url}/health", timeout=5)
            except httpx.ConnectError:
                self.crashed(replica)
            except httpx.TransportError:
                pass

    async def close(self) -> None:
        """Refuse new requests, drain and stop every replica."""
        self.closing = True
        self.desired = 0
        self._notify()
        self._reconcile()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _reconcile(self) -> None:
        if not self.closing:
            self._take_back_draining(self.desired - sum(r.state != "draining" for r in self.replicas))
        active = [r for r in self.replicas if r.state != "draining"]
        for _ in range(self.desired - len(active)):
            if self.closing:
                break
            replica = Replica(next(self._ids))
            self.replicas.append(replica)
            self._spawn(self._start(replica))
        # Scale-in takes replicas still starting first (they serve nobody), then the least busy.
        excess = sorted(active, key=lambda r: (r.state == "ready", r.outstanding))
        for replica in excess[: max(0, len(active) - self.desired)]:
            replica.state = "draining"
            if replica.handle is not None:
                self._spawn(self._drain(replica))
        self._notify()

    async def _start(self, replica: Replica) -> None:
        try:
            replica.handle = await asyncio.to_thread(self._factory)
        except Exception as error:  # noqa: BLE001 - any start failure is counted and retried
            log.warning("a replica failed to start: %s", error)
            self.counts.start_failed += 1
            self._remove(replica)
            asyncio.get_running_loop().call_later(self._restart_delay_s, self._reconcile)
            return
        if replica.state == "draining" or replica not in self.replicas:
            await self._drain(replica)  # scaled in (or closed) while it was starting
            return
        replica.state = "ready"
        replica.idle.set()
        log.info("replica %s is ready", replica.url)
        self._notify()

    def _take_back_draining(self, missing: int) -> None:
        # A scale-out while a replica still drains (the autoscaler changed its mind) takes
        # that replica back: it is warm, and its port is not free for a new one anyway.
        draining = [r for r in self.replicas if r.state == "draining" and r.handle is not None]
        for replica in draining[: max(0, missing)]:
            replica.state = "ready"
            replica.drains += 1  # its pending drain task sees this and leaves it running
            log.info("replica %s is ready again (scaled out while it drained)", replica.url)

    async def _drain(self, replica: Replica) -> None:
        drain = replica.drains
        if replica.outstanding:
            await replica.idle.wait()
        if replica.drains != drain or replica.state != "draining":
            return  # taken back while it drained
        self._remove(replica)
        log.info("replica %s drained; stopping it", replica.url)
        await asyncio.to_thread(_stop_quietly, replica.handle)

    def _remove(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)
        self._notify()

    def _notify(self) -> None:
        # Every change of a replica's state ends here, right after it: charge the time
        # before it at the old ready count.
        self.ready_seconds.changed(len(self.ready))
        # Wake every waiter; the next waiters wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _stop_quietly(handle: ReplicaHandle | None) -> None:
    if handle is None:
        return
    try:
        handle.stop()
    except Exception as error:  # noqa: BLE001 - a failed stop must not stop the pool
        log.warning("stopping replica %s failed: %s", handle.url, error)


@dataclass
class _PortedReplica:
    """A replica process that gives its port back to the range when stopped."""

    inner: ReplicaHandle
    port: int
    ports: set[int]
    lock: threading.Lock

    @property
    def url(self) -> str:
        return self.inner.url

    def stop(self) -> object:
        try:
            return self.inner.stop()
        finally:
            with self.lock:
                self.ports.discard(self.port)


def process_factory(
    log_dir: Path, settings: Mapping[str, object], ports: tuple[int, int] | None = None
) -> ReplicaFactory:
    """Start service children (``python -m inference``) (``start_replica``) labelled ``replica=<port>``.

    With ``ports`` each child takes the first port of the range that is neither in use by
    the pool nor bound by anyone else; without it, any free port."""
    from inference.replica_process import free_port, start_replica

    used: set[int] = set()
    lock = threading.Lock()

    def start() -> ReplicaHandle:
        with lock:
            port = _pick_port(ports, used) if ports else free_port()
            used.add(port)
        try:
            replica = start_replica(log_dir, {**settings, "replica": str(port)}, port)
        except BaseException:
            with lock:
                used.discard(port)
            raise
        return _PortedReplica(replica, port, used, lock)

    return start


def _pick_port(ports: tuple[int, int], used: set[int]) -> int:
    for port in range(ports[0], ports[1] + 1):
        if port not in used and _bindable(port):
            return port
    raise RuntimeError(f"no free port left in the replica range {ports[0]}-{ports[1]}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        # As uvicorn binds: connections of a stopped replica linger in TIME_WAIT on its
        # port for a minute, which a plain bind counts as "in use" and uvicorn does not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
