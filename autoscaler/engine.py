"""The engine that applies the policy: read the target and the store, decide, apply
through the target (or not: dry run, paused), record, keep state.

``poll(endpoint, now)`` is one control-loop step for one endpoint. Every decision,
applied or not, is written to the store's scaling events with its inputs and reason;
a count the target took is recorded in the policy's state (``PolicyState.scaled``:
cooldowns, the warm-up), one recorded but not applied leaves no such mark;
the policy's state and the operator's controls are saved under ``autoscaler:<endpoint>``
so that a restart neither forgets a cooldown nor flaps. Target failures are retried
(``TargetRetryable``, honouring Retry-After up to a cap), then recorded as a failed
action (applied = false, the error in the reason); the next poll tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from autoscaler.capacity import Capacity
from autoscaler.controls import Controls, Override
from autoscaler.model import Decision
from autoscaler.policy import decide
from autoscaler.readings import read_window
from autoscaler.storage import AutoscalerStore
from autoscaler.targets.base import Target, TargetError, TargetRetryable, TargetThrottled
from inferplane.config import InferplaneConfig
from inferplane.config.endpoints import Endpoint
from inferplane.schedule import OneOffDowntime, downtime_key, with_downtime

__all__ = ["AutoscalerEngine", "PollResult", "state_key"]

log = logging.getLogger(__name__)


def state_key(endpoint: str) -> str:
    return f"autoscaler:{endpoint}"


@dataclass(frozen=True)
class PollResult:
    """What one poll did: the counts, whether it was applied, and the recorded reason."""

    endpoint: str
    from_replicas: int
    to_replicas: int
    applied: bool
    dry_run: bool
    reason: str
    error: str | None = None


class AutoscalerEngine:
    """Polls autoscaled endpoints. ``targets`` maps endpoint name to its target; the
    engine owns them and the store (``close`` closes both)."""

    def __init__(
        self,
        config: InferplaneConfig,
        store: AutoscalerStore,
        targets: Mapping[str, Target],
        *,
        dry_run: bool = False,
        attempts: int = 3,
        max_wait_s: float = 5.0,
        capacities: Mapping[str, Capacity] | None = None,
    ) -> None:
        self._config = config
        self._capacities = dict(capacities or {})
        self._store = store
        self._targets = dict(targets)
        self._dry_run = dry_run or (config.autoscaler is not None and config.autoscaler.dry_run)
        self._attempts = attempts
        self._max_wait_s = max_wait_s

    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints this engine scales (an autoscaling section and a target)."""
        return [e for e in self._config.endpoints if e.autoscaling is not None and e.name in self._targets]

    @property
    def store(self) -> AutoscalerStore:
        return self._store

    @property
    def config(self) -> InferplaneConfig:
        return self._config

    def target(self, endpoint: str) -> Target:
        return self._targets[endpoint]

    def controls(self, endpoint: str) -> Controls:
        return Controls.from_json(self._store.load_state(state_key(endpoint)))

    def poll(self, endpoint_name: str, now: datetime) -> PollResult:
        """One control-loop step for one endpoint (raises only ``StoreError``)."""
        endpoint = self._with_downtime(self._config.endpoint(endpoint_name), now)
        target = self._targets[endpoint_name]
        controls = self.controls(endpoint_name)
        try:
            count = self._call(lambda: target.current_replicas())
        except TargetError as error:
            return self._unreadable(endpoint_name, controls, error, now)
        policy = endpoint.autoscaling
        assert policy is not None
        window = read_window(self._store, endpoint_name, policy, count.desired, count.ready, now)
        decision = decide(window, endpoint, controls.policy, now, self._capacities.get(endpoint_name))
        desired, reason, controls = self._controlled(decision, controls, endpoint, now)
        advisory = self._advisory(controls, endpoint)
        failure: str | None = None
        state = decision.state
        if desired == count.desired:
            applied, dry_run = True, False
        elif advisory is not None:
            applied, dry_run, reason = False, True, f"{advisory}: {reason}"
        else:
            failure = self._apply(target, desired)
            applied, dry_run = failure is None, False
            if failure is None:
                state = state.scaled(count.desired, desired, now)
            else:
                reason = f"{reason}; FAILED: {failure}"
        inputs = {**decision.inputs, "cost_before_usd_per_hour": decision.cost_before_usd_per_hour}
        inputs["cost_after_usd_per_hour"] = decision.cost_after_usd_per_hour
        self._store.write_scaling_event(
            now,
            endpoint_name,
            count.desired,
            desired,
            reason,
            applied=applied,
            dry_run=dry_run,
            inputs=inputs,
        )
        self._store.save_state(state_key(endpoint_name), controls.evolve(policy=state).to_json(), now)
        if desired != count.desired:
            level = logging.WARNING if failure else logging.INFO
            log.log(level, "autoscaler %s: %s", endpoint_name, reason)
        return PollResult(endpoint_name, count.desired, desired, applied, dry_run, reason, failure)

    def override(
        self, endpoint_name: str, replicas: int, until: datetime, reason: str, now: datetime
    ) -> PollResult:
        """Pin the count until ``until`` (a manual ``inferplane scale``), applied at once."""
        endpoint = self._config.endpoint(endpoint_name)
        if not 0 <= replicas <= endpoint.max_replicas:
            raise ValueError(f"{endpoint_name}: {replicas} replicas is outside 0..{endpoint.max_replicas}")
        controls = self.controls(endpoint_name).evolve(override=Override(replicas, until, reason))
        self._store.save_state(state_key(endpoint_name), controls.to_json(), now)
        return self.poll(endpoint_name, now)

    def set_paused(self, endpoint_name: str, paused: bool, now: datetime) -> None:
        """Pause (decide and record, never scale) or resume; resuming also ends an override."""
        self._config.endpoint(endpoint_name)
        controls = self.controls(endpoint_name).evolve(paused=paused)
        if not paused:
            controls = controls.evolve(override=None)
        self._store.save_state(state_key(endpoint_name), controls.to_json(), now)

    def downtime(self, endpoint: str) -> OneOffDowntime | None:
        return OneOffDowntime.from_json(self._store.load_state(downtime_key(endpoint)))

    def set_downtime(self, endpoint_name: str, downtime: OneOffDowntime, now: datetime) -> None:
        """Off-hours from ``downtime.start`` until ``downtime.until`` (``inferplane
        autoscaler off-hours``): the floor drops as in a downtime window, an idle endpoint
        scales to the off-hours floor and a waiting request still wakes it. A new one
        replaces the last; one that ends now ends it."""
        self._config.endpoint(endpoint_name)
        self._store.save_state(downtime_key(endpoint_name), downtime.to_json(), now)

    def _with_downtime(self, endpoint: Endpoint, now: datetime) -> Endpoint:
        policy = endpoint.autoscaling
        if policy is None:
            return endpoint
        widened = with_downtime(policy, self.downtime(endpoint.name), now)
        return endpoint if widened is policy else endpoint.model_copy(update={"autoscaling": widened})

    def close(self) -> None:
        """Close the targets (the store stays open: whoever opened it closes it)."""
        for target in self._targets.values():
            target.close()

    def _controlled(
        self, decision: Decision, controls: Controls, endpoint: Endpoint, now: datetime
    ) -> tuple[int, str, Controls]:
        override = controls.active_override(now)
        if override is not None:
            replicas = min(override.replicas, endpoint.max_replicas)
            why = f"manual override to {replicas} until {override.until:%Y-%m-%d %H:%M} UTC"
            why += f" ({override.reason})" if override.reason else ""
            return replicas, f"{why}; the policy said: {decision.reason}", controls
        if controls.override is not None:
            note = f"; manual override to {controls.override.replicas} expired"
            return decision.desired_replicas, decision.reason + note, controls.evolve(override=None)
        return decision.desired_replicas, decision.reason, controls

    def _advisory(self, controls: Controls, endpoint: Endpoint) -> str | None:
        # Why the decision is recorded but not applied, or None when it is applied.
        if self._dry_run or (endpoint.autoscaling is not None and endpoint.autoscaling.dry_run):
            return "dry run"
        return "paused" if controls.paused else None

    def _apply(self, target: Target, replicas: int) -> str | None:
        try:
            self._call(lambda: target.scale_to(replicas))
        except TargetError as error:
            return f"{type(error).__name__}: {error}"
        return None

    def _call(self, action: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(TargetRetryable),
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            reraise=True,
        )
        return retrying(action)

    def _wait(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, TargetThrottled) and error.retry_after_s is not None:
            return min(error.retry_after_s, self._max_wait_s)
        return min(0.5 * 2 ** (retry_state.attempt_number - 1), self._max_wait_s)

    def _unreadable(self, name: str, controls: Controls, error: TargetError, now: datetime) -> PollResult:
        last = controls.policy.recommendations[-1][1] if controls.policy.recommendations else 0
        reason = f"hold: the target could not be read, {type(error).__name__}: {error}"
        log.warning("autoscaler %s: %s", name, reason)
        self._store.write_scaling_event(
            now, name, last, last, reason, applied=False, dry_run=False, inputs={"error": str(error)}
        )
        return PollResult(name, last, last, False, False, reason, str(error))
