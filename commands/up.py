"""The supervisor behind ``inferplane up``: start child processes, restart the ones that
die, stop them all.

Each child runs in its own process group (its own session), so that a child's own
children (the router's replicas) can be stopped with it, and so that a Ctrl-C on the
terminal reaches only the supervisor, which stops the children in order. Each child also
gets ``PR_SET_PDEATHSIG`` = SIGTERM (Linux): if the supervisor is killed with -9, every
child is told to drain and stop, as on a normal stop::

    supervisor = Supervisor([ChildSpec("router", [...], Path("router.log"))])
    supervisor.start()
    while running:
        supervisor.tick()          # restarts crashed children with backoff
    supervisor.stop(timeout_s=60)  # SIGTERM (drain), then SIGKILL to the whole group

A child that keeps failing is restarted after 1, 2, 4 ... up to 30 s; one that ran for
``stable_after_s`` starts again from 1 s. Failures are logged with the end of the
child's log, and never stop the other children.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Child", "ChildSpec", "Supervisor", "group_members", "restart_delay"]

log = logging.getLogger("commands.up")

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 8


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child: its command, its log file, how to tell it is ready."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    ready: Callable[[], bool] | None = None
    """True once the child serves; None: ready as soon as it runs."""
    before_start: Callable[[], None] | None = None
    """Runs before every (re)start, e.g. to remove a stale ready file."""
    required: bool = True
    """Whether ``up`` waits for it before saying it is ready."""


def restart_delay(failures: int, base_s: float = 1.0, cap_s: float = 30.0) -> float:
    """Seconds to wait before the ``failures``-th restart in a row: 1, 2, 4 ... ``cap_s``."""
    return min(cap_s, base_s * 2 ** max(0, failures - 1))


@dataclass
class Child:
    """A child's live state: its process, failures in a row, when it may restart."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None
    groups: set[int] = field(default_factory=set)
    """Every process group this child ever led, to sweep at stop."""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        # Fields after the command (which may hold spaces): state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM this child when the supervisor dies (even by SIGKILL)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: process groups still stop the children
        return lambda: None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


class Supervisor:
    """Starts, watches, restarts and stops a fixed set of children (one thread only:
    PDEATHSIG fires when the thread that started a child ends)."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        stable_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self.stable_after_s = stable_after_s
        self.clock = clock
        self.stopping = False

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def ready(self) -> bool:
        """Every required child runs and says it is ready."""
        return all(self._is_ready(c) for c in self.children if c.spec.required)

    def tick(self) -> None:
        """Notice children that exited, and restart those whose backoff is over."""
        now = self.clock()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None and child.restart_at is None:
                self._exited(child, now)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                child.restart_at = None
                child.restarts += 1
                self._spawn(child)

    def stop(self, timeout_s: float, kill_now: Callable[[], bool] = lambda: False) -> bool:
        """SIGTERM every child (each drains), wait up to ``timeout_s`` (less if ``kill_now``
        turns true), then SIGKILL every group left; True when nothing had to be killed."""
        self.stopping = True
        for child in self.children:
            if child.pid is not None:
                log.info("stopping %s (pid %d)", child.spec.name, child.pid)
                _signal(child.pid, signal.SIGTERM)
        deadline = self.clock() + timeout_s
        while self._alive() and self.clock() < deadline and not kill_now():
            time.sleep(0.1)  # polling child processes, with a deadline
        clean = not self._alive()
        for child in self.children:
            for pgid in sorted(child.groups):
                if group_members(pgid):
                    log.warning("%s did not stop in time: killing process group %d", child.spec.name, pgid)
                    _signal_group(pgid, signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
        deadline = self.clock() + 10
        while self._alive() and self.clock() < deadline:
            time.sleep(0.05)
        return clean

    def _alive(self) -> bool:
        return any(group_members(pgid) for child in self.children for pgid in child.groups)

    def _is_ready(self, child: Child) -> bool:
        if child.pid is None:
            return False
        try:
            return child.spec.ready() if child.spec.ready is not None else True
        except Exception as error:  # noqa: BLE001 - a probe that fails means "not ready"
            log.debug("%s readiness probe failed: %s", child.spec.name, error)
            return False

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        for pgid in sorted(child.groups):
            if group_members(pgid):
                log.warning("%s: killing what its previous run left in process group %d", spec.name, pgid)
                _signal_group(pgid, signal.SIGKILL)
            else:
                child.groups.discard(pgid)
        if spec.before_start is not None:
            spec.before_start()
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if spec.env is None else spec.env)
        with spec.log_path.open("ab") as out:
            child.process = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        child.started_at = self.clock()
        child.groups.add(child.process.pid)  # a new session: its pid is its group id
        log.info("started %s (pid %d), log %s", spec.name, child.process.pid, spec.log_path)

    def _exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        code = child.process.returncode
        if self.stopping:
            return
        # What the child left behind in its group (a crashed router's replicas) is told to
        # stop now, and killed before the restart if it is still there.
        _signal_group(child.process.pid, signal.SIGTERM)
        ran = now - child.started_at
        child.failures = 1 if ran >= self.stable_after_s else child.failures + 1
        delay = restart_delay(child.failures)
        child.restart_at = now + delay
        log.error(
            "%s exited with %s after %.1f s (failure %d in a row); restarting in %.0f s. "
            "Last lines of %s:\n%s",
            child.spec.name,
            _describe(code),
            ran,
            child.failures,
            delay,
            child.spec.log_path,
            _tail(child.spec.log_path),
        )


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(cannot read it: {error})"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty)"


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
