"""Retries with backoff shared by every channel, keeping the error of each failed attempt
so the alert engine can record every delivery attempt, not just the last.

::

    earlier_failures = attempt_with_retries(
        "oncall-hook", "https://hooks.example.com", lambda: post(...),
        retries=3, backoff_s=0.5, retry_if=is_transient,
    )

Returns the errors of the attempts that failed before one succeeded (empty: the first
try worked); raises ``DeliveryError`` with ``attempt_errors`` holding every attempt's error
when none did, or at once for an error ``retry_if`` calls permanent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from alerts.model import DeliveryError

__all__ = ["attempt_with_retries"]

log = logging.getLogger(__name__)


def attempt_with_retries(
    channel: str,
    where: str,
    attempt: Callable[[], Any],
    *,
    retries: int,
    backoff_s: float,
    retry_if: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str] = repr,
    sleep: Callable[[float], None] | None = None,
) -> list[str]:
    """Run ``attempt`` up to ``retries`` times in all (see the module docstring)."""
    failures: list[str] = []

    def _before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        failures.append(describe(error) if error else "unknown error")
        log.warning(
            "channel %s: attempt %d to %s failed (%s), retrying",
            channel,
            state.attempt_number,
            where,
            failures[-1],
        )

    retrying = Retrying(
        stop=stop_after_attempt(retries),
        wait=wait_exponential(multiplier=backoff_s, max=30),
        retry=retry_if_exception(retry_if),
        sleep=sleep or time.sleep,
        before_sleep=_before_sleep,
    )
    try:
        retrying(attempt)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        last = describe(cause) if cause else "unknown error"
        raise DeliveryError(
            f"channel {channel!r}: delivery to {where} failed after {retries} attempts: {last}",
            attempt_errors=[*failures, last],
        ) from cause
    except Exception as exc:
        # Not worth retrying (refused credentials, a 4xx): one more failed attempt.
        raise DeliveryError(
            f"channel {channel!r}: delivery to {where} refused: {describe(exc)}",
            attempt_errors=[*failures, describe(exc)],
        ) from exc
    return failures
