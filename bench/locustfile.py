"""Replay the Azure LLM code trace against an inferplane service with Locust.

Open loop: every request of the (scaled) trace is sent at its own offset from the start
of the run, in its own greenlet, whether or not earlier requests have been answered, so a
slow service meets the trace's real arrival rate instead of a politely slowed one. One
user drives the whole replay (extra users do nothing); the run ends when the trace has
been sent and answered, or at ``-t``, whichever comes first.

Run it (needs the ``load`` extra, ``pip install -e '.[load]'``)::

    locust -f bench/locustfile.py --headless -H http://127.0.0.1:8000 -t 60s

Settings, from the environment:

- ``INFERPLANE_TRACE_TIME_SCALE`` (10): 10 replays the trace ten times faster.
- ``INFERPLANE_TRACE_TOKEN_SCALE`` (0.05): multiplies prompt and generated token counts.
- ``INFERPLANE_TRACE_MAX_PROMPT_TOKENS`` (1024), ``INFERPLANE_TRACE_MAX_GENERATED_TOKENS``
  (256): caps after scaling; keep them within the service's limits.
- ``INFERPLANE_TRACE_PATH``: another trace file, any format ``inference.trace.load_trace``
  reads (default: the packaged Azure trace).
- ``INFERPLANE_API_KEY``: sent as ``Authorization: Bearer <key>`` when set.

Requests go to ``/v1/completions`` at temperature 0.7, so the service's response cache
(temperature 0 only) does not answer them. A 429 (queue full) counts as a failure named
as such; so does any other non-200 answer or a body without choices.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import gevent
from gevent.pool import Group
from locust import HttpUser, task
from locust.clients import ResponseContextManager
from urllib3 import PoolManager

from inference.trace import TraceRequest, load_trace, scale_trace, synthetic_prompt

TEMPERATURE = 0.7
REQUEST_TIMEOUT_S = 300  # the service's own request_timeout_s default
MAX_CONNECTIONS = 512

_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class ReplaySettings:
    """What to replay and how; see the module docstring for the variables."""

    time_scale: float = 10.0
    token_scale: float = 0.05
    max_prompt_tokens: int = 1024
    max_generated_tokens: int = 256
    trace_path: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReplaySettings:
        return cls(
            time_scale=_env_number(environ, "INFERPLANE_TRACE_TIME_SCALE", cls.time_scale, float),
            token_scale=_env_number(environ, "INFERPLANE_TRACE_TOKEN_SCALE", cls.token_scale, float),
            max_prompt_tokens=_env_number(
                environ, "INFERPLANE_TRACE_MAX_PROMPT_TOKENS", cls.max_prompt_tokens, int
            ),
            max_generated_tokens=_env_number(
                environ, "INFERPLANE_TRACE_MAX_GENERATED_TOKENS", cls.max_generated_tokens, int
            ),
            trace_path=environ.get("INFERPLANE_TRACE_PATH") or None,
            api_key=environ.get("INFERPLANE_API_KEY") or None,
        )

    def schedule(self) -> list[TraceRequest]:
        return scale_trace(
            load_trace(self.trace_path),
            self.time_scale,
            self.token_scale,
            self.max_prompt_tokens,
            self.max_generated_tokens,
        )


def _env_number(environ: Mapping[str, str], name: str, default: _Number, kind: type[_Number]) -> _Number:
    raw = environ.get(name, "")
    try:
        return kind(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


# Read at import, so a bad setting stops locust before any load is sent.
SETTINGS = ReplaySettings.from_env(os.environ)
SCHEDULE = SETTINGS.schedule()


class TraceReplayUser(HttpUser):
    """Sends the whole scaled trace open-loop, then stops the run."""

    # One replayer: a second one would double the trace's rate.
    fixed_count = 1
    # Open loop means many requests at once; urllib3's default of 10 kept connections
    # would open and discard one per request beyond that.
    pool_manager = PoolManager(maxsize=MAX_CONNECTIONS)

    def on_start(self) -> None:
        if SETTINGS.api_key:
            self.client.headers["Authorization"] = f"Bearer {SETTINGS.api_key}"
        self.in_flight = Group()

    def on_stop(self) -> None:
        # Requests still running at -t are dropped rather than reported after the summary.
        self.in_flight.kill(block=False)

    @task
    def replay(self) -> None:
        start = time.monotonic()
        for request in SCHEDULE:
            # Sleep to the absolute offset, so time spent spawning never accumulates as drift.
            delay = start + request.offset_s - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            self.in_flight.spawn(self.send, request)
        self.in_flight.join()
        self.environment.runner.quit()

    def send(self, request: TraceRequest) -> None:
        body = {
            "prompt": synthetic_prompt(request.prompt_tokens),
            "max_tokens": request.generated_tokens,
            "temperature": TEMPERATURE,
        }
        with self.client.post(
            "/v1/completions",
            json=body,
            name="/v1/completions",
            catch_response=True,
            timeout=REQUEST_TIMEOUT_S,
        ) as response:
            problem = _problem(response)
            if problem is None:
                response.success()
            else:
                response.failure(problem)


def _problem(response: ResponseContextManager) -> str | None:
    """Why an answer counts as a failure; None for a good completion."""
    if response.status_code == 429:
        return "429 Too Many Requests: the service's queue is full"
    if response.status_code == 0:
        return f"no response: {response.error}"
    if response.status_code != 200:
        return f"{response.status_code}: {response.text[:200]}"
    try:
        choices = response.json().get("choices")
    except ValueError:
        return "200 with a body that is not JSON"
    return None if choices else "200 without choices"
