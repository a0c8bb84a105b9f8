"""How the router holds, forwards and scales: its settings, apart from the app.

Both the app (``inference.router``) and the forwarding (``inference.router_forward``)
read them; keeping them here lets imports point one way (app -> forwarding -> settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.replica_pool import Routing, routing_named

__all__ = ["RouterSettings"]


@dataclass(frozen=True)
class RouterSettings:
    """How the router holds, forwards and scales; labels for its metrics."""

    model: str = "default"
    endpoint: str = "default"
    initial_replicas: int = 0
    max_replicas: int = 8
    hold_timeout_s: float = 300.0
    retry_after_s: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0
    probe_interval_s: float = 2.0
    restart_delay_s: float = 1.0
    max_held: int = 256  # requests held while no replica is ready; beyond: 429
    max_attempts: int = 3  # replicas tried for a request that got no answer at all
    retry_backoff_s: float = 0.5  # before retrying on a replica that broke off (doubling)
    max_body_bytes: int = 8 * 1024 * 1024  # a larger request body gets 413
    admin_key_env: str | None = None  # the variable's name; the key itself is never logged
    # How a ready replica is picked (``inference.replica_pool``): fewest requests, or the
    # fewest prompt tokens awaiting a first byte (long prompts; streamed answers say best).
    routing: Routing = "fewest-requests"

    def __post_init__(self) -> None:
        routing_named(self.routing)
