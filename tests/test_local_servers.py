"""The test helpers' port picker: a port is handed out once per test process, so two
servers a test starts can never be given the same port before either binds it."""

from __future__ import annotations

import random

import pytest

from tests.local_servers import free_port, free_port_range


def test_a_port_is_never_handed_out_twice_even_when_the_draw_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same draw every time until the picker moves on: without the memory of what
    # it handed out, the router's port and the replica range would be the same ports.
    draws = iter([24_039] * 5 + list(range(25_000, 26_000)))
    monkeypatch.setattr(random, "randrange", lambda start, stop: next(draws))
    router = free_port()
    first, last = free_port_range(2)
    prometheus = free_port()
    ports = [router, *range(first, last + 1), prometheus]
    assert router == 24_039
    assert len(set(ports)) == len(ports) == 4
