"""What an operator sets on an endpoint, kept in the store beside the policy's state:
pause/resume and a manual override with an expiry (pure data and rules).

A paused endpoint is still decided and recorded, never scaled. An override pins the
replica count until it expires; the policy keeps deciding (its recommendations stay
current) but the override's count is what is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from autoscaler.model import PolicyState

__all__ = ["Controls", "Override"]


@dataclass(frozen=True)
class Override:
    replicas: int
    until: datetime
    reason: str = ""


@dataclass(frozen=True)
class Controls:
    """One endpoint's stored document: the policy's state, pause, override."""

    policy: PolicyState = field(default_factory=PolicyState)
    paused: bool = False
    override: Override | None = None

    def active_override(self, now: datetime) -> Override | None:
        return self.override if self.override is not None and now < self.override.until else None

    def evolve(self, **changes: Any) -> Controls:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        override = self.override
        return {
            "policy": self.policy.to_json(),
            "paused": self.paused,
            "override": None
            if override is None
            else {
                "replicas": override.replicas,
                "until": override.until.isoformat(),
                "reason": override.reason,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Controls:
        if not data:
            return cls()
        raw = data.get("override")
        override = (
            None
            if raw is None
            else Override(int(raw["replicas"]), datetime.fromisoformat(raw["until"]), raw.get("reason", ""))
        )
        return cls(PolicyState.from_json(data.get("policy")), bool(data.get("paused")), override)
