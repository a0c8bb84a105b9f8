"""What the two Azure sources share: which SDK errors are worth retrying, how long Azure
asks us to wait, and the per-call options that bound each HTTP call.

The SDK clients are built with their own retry policy switched off (``retry_total=0``):
the azure-core policy sleeps with ``time.sleep`` and only reads ``Retry-After``, while we
need an injectable sleep (tests must not wait) and Cost Management's own
``x-ms-ratelimit-microsoft.costmanagement-*-retry-after`` headers. Retrying happens here,
once, with tenacity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

__all__ = ["Sleep", "call_options", "is_transient", "make_retrying", "requested_wait_s", "sdk_options"]

Sleep = Callable[[float], None]

# Statuses where the same request may succeed later; 4xx other than 408/429 will not.
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RATELIMIT_PREFIX = "x-ms-ratelimit-"
_RATELIMIT_SUFFIX = "-retry-after"


def sdk_options(connection_verify: bool | str) -> dict[str, Any]:
    """Client constructor options: no SDK-level retries (see module docstring) and the TLS
    verification setting (``True``, or a CA bundle path for a private CA or a test server)."""
    return {"retry_total": 0, "connection_verify": connection_verify}


def call_options(timeout_s: float) -> dict[str, Any]:
    """Per-call options for azure-core's transport: bound connecting and reading."""
    return {"connection_timeout": timeout_s, "read_timeout": timeout_s}


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call may help (timeouts, connection errors, 408/429/5xx)."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(exc, HttpResponseError):
        return exc.status_code in _TRANSIENT_STATUSES
    return False


def requested_wait_s(headers: Mapping[str, str]) -> float | None:
    """The longest wait Azure asks for: ``Retry-After`` (seconds) and every
    ``x-ms-ratelimit-*-retry-after`` header; ``None`` when none is present or readable.

    The longest wins because each header reports a different quota (per client, per
    tenant, per query-processing units) and all of them must have recovered.
    """
    waits: list[float] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower == "retry-after" or (
            lower.startswith(_RATELIMIT_PREFIX) and lower.endswith(_RATELIMIT_SUFFIX)
        ):
            try:
                waits.append(float(value))
            except ValueError:  # an HTTP date: rare for ARM; fall back to our own backoff
                continue
    return max(waits) if waits else None


def _response_headers(exc: BaseException | None) -> Mapping[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


def make_retrying(attempts: int, sleep: Sleep, backoff_s: float = 1.0, max_wait_s: float = 300.0) -> Retrying:
    """A tenacity ``Retrying`` that retries transient errors up to ``attempts`` calls in all,
    waiting what the server asks for (capped at ``max_wait_s``) or else an exponential backoff.
    The last error is re-raised so the caller can translate it."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = requested_wait_s(_response_headers(exc))
        if asked is not None:
            return min(asked, max_wait_s)
        return min(backoff_s * 2 ** (state.attempt_number - 1), max_wait_s)

    return Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait,
        retry=retry_if_exception(is_transient),
        sleep=sleep,
        reraise=True,
    )
