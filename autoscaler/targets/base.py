"""The one small interface every target (actuator) satisfies, and its exception tree.

Exception tree (every adapter translates its client library's errors into these, with
the original chained, and a message that names the resource and never a secret)::

    TargetError                 anything that stopped a read or a scale
    ├── TargetRefused           403, 404, 400/422: retrying will not help (fix the config or RBAC)
    └── TargetRetryable         worth another try, on this poll or the next
        ├── TargetConflict      409 / 412: someone else changed the resource; re-read, re-apply
        ├── TargetThrottled     429: ``retry_after_s`` says when (None when not given)
        └── TargetUnavailable   timeout, connection error, 5xx
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ReplicaCount",
    "Target",
    "TargetConflict",
    "TargetError",
    "TargetOptions",
    "TargetRefused",
    "TargetRetryable",
    "TargetThrottled",
    "TargetUnavailable",
]


@dataclass(frozen=True)
class ReplicaCount:
    """What a target reports: the replica count it is set to, and how many are ready.

    ``ready`` is None when the platform does not say (never a guessed 0)."""

    desired: int
    ready: int | None


class Target(Protocol):
    """Where an endpoint's replicas run. One implementation per module in this package."""

    def current_replicas(self) -> ReplicaCount:
        """Read the set and ready replica counts; raises ``TargetError``."""
        ...

    def scale_to(self, replicas: int) -> None:
        """Set the replica count (returns once the platform accepted it, not once the
        replicas are ready); raises ``TargetError``. Scale-in must not drop requests:
        targets that own replicas drain them, platforms rely on their own drain
        (readiness, preStop)."""
        ...

    def close(self) -> None:
        """Release clients and connections."""
        ...


@dataclass(frozen=True)
class TargetOptions:
    """How to reach a target, beyond what the endpoint's config says.

    Tests point ``base_url`` at a local server; production leaves it None (the cloud's
    public endpoint, or the kubeconfig's server)."""

    timeout_s: float = 10.0
    base_url: str | None = None
    # azure-core TokenCredential; None -> azure-identity's DefaultAzureCredential.
    azure_credential: Any = None
    # CA bundle path for TLS to base_url (tests' self-signed stub), or True/False.
    verify: str | bool = True
    # kubernetes.client.Configuration; None -> kubeconfig (target.context) or in-cluster.
    kube_configuration: Any = None


class TargetError(RuntimeError):
    """A target could not be read or scaled."""


class TargetRefused(TargetError):
    """The platform refused (403, 404, 400, 422): retrying will not help."""


class TargetRetryable(TargetError):
    """A failure worth another try."""


class TargetConflict(TargetRetryable):
    """409 or 412: the resource changed underneath; re-read and re-apply."""


class TargetThrottled(TargetRetryable):
    """429: too many requests."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TargetUnavailable(TargetRetryable):
    """Timeout, connection error or 5xx."""
