"""Where in a replay the SLO was missed, and what the fleet was then (pure).

A replay's row is one figure for the whole trace; a row that misses its goal does not
say whether it lost the requests in one opening burst or a few every hour, nor what the
policy was doing when it did. :func:`timeline` cuts a finished run into buckets of
``step_s`` seconds of arrivals and gives each the requests that arrived in it, how many
of them got their first token late, the replica counts the controller's polls saw, and,
for a row whose controller explains itself (the configured policy), each change of count
it decided in the bucket and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autoscaler.replay.simulator import Simulation

__all__ = ["Bucket", "check_step", "timeline"]


@dataclass(frozen=True)
class Bucket:
    """``step_s`` seconds of a run, from ``start_s`` after the trace's first arrival."""

    start_s: float
    requests: int  # judged requests that arrived in the bucket (the left-out ones are not)
    missed: int  # of them, those whose first token came later than their SLO limit
    replicas: float | None  # the target count, mean over the controller's polls in the bucket
    ready_min: int | None  # the fewest serving replicas a poll in the bucket saw
    ready_max: int | None
    reason: str = ""  # the changes of count decided in the bucket and why (" | " apart), where the row says


def check_step(step_s: float) -> None:
    """ValueError unless ``step_s`` is a positive, finite number of seconds."""
    if not (step_s > 0 and math.isfinite(step_s)):
        raise ValueError(f"step_s must be a positive number of seconds, got {step_s}")


def timeline(
    sim: Simulation,
    limit: Callable[[int], float],
    excluded: Sequence[bool],
    step_s: float,
    reasons: Sequence[tuple[float, str]] = (),
) -> tuple[Bucket, ...]:
    """Buckets of ``step_s`` from 0 to the last arrival. ``limit(prompt_tokens)`` is the
    SLO's first-token limit; ``reasons`` (seconds, text) the controller's changes of count.
    A bucket no poll fell in shows the counts of the poll before it (the fleet then)."""
    check_step(step_s)
    reqs = sim.requests
    if not reqs.arrival_s:
        return ()
    n = int(reqs.arrival_s[-1] // step_s) + 1
    requests, missed = [0] * n, [0] * n
    for i, (arrival, prompt) in enumerate(zip(reqs.arrival_s, reqs.prompt_tokens, strict=True)):
        if excluded[i]:
            continue
        k = int(arrival // step_s)
        requests[k] += 1
        missed[k] += sim.first_token[i] - arrival > limit(prompt)
    polls: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for at, target, ready in sim.polls:
        k = int(at // step_s)
        if 0 <= k < n:
            polls[k].append((target, ready))
    why: list[list[str]] = [[] for _ in range(n)]
    for at, text in reasons:
        k = int(at // step_s)
        if 0 <= k < n:
            why[k].append(text)
    out: list[Bucket] = []
    before: tuple[int, int] | None = None
    for k in range(n):
        seen = polls[k] or ([before] if before is not None else [])
        if polls[k]:
            before = polls[k][-1]
        targets, serving = [t for t, _ in seen], [r for _, r in seen]
        out.append(
            Bucket(
                start_s=k * step_s,
                requests=requests[k],
                missed=missed[k],
                replicas=round(sum(targets) / len(targets), 2) if targets else None,
                ready_min=min(serving) if serving else None,
                ready_max=max(serving) if serving else None,
                reason=" | ".join(why[k]),
            )
        )
    return tuple(out)
