"""Property tests: counters integrated as increases add up to what was served, exactly.

A replica's counter is read now and then; between two reads it may serve, restart (its
counter starts again at zero, with a new ``_created`` time), or not be read at all (a
failed scrape, the collector down); the collector itself may restart, carrying its
counter state through the store as JSON. Whatever the sequence, the increases the
normalizer emits must sum to the tokens served while we watched, by every process we
read at least once after it served them: what a finance team would count. Tokens a
process served after its last read and before it died are gone with its counter, for
us as for Prometheus; the model below leaves them out the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.costs import GpuPrice, estimate_costs
from collector.normalize import CounterState, normalize
from collector.samples import Sample

T0 = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)

# One step of the world: serve n tokens, restart the replica process, read /metrics
# (a scrape that may fail), or restart the collector (state saved and loaded again).
_step = st.one_of(
    st.tuples(st.just("serve"), st.integers(1, 500)),
    st.tuples(st.just("restart_process"), st.just(0)),
    st.tuples(st.just("scrape"), st.booleans()),
    st.tuples(st.just("restart_collector"), st.just(0)),
)


@dataclass
class _Process:
    created: float
    value: float = 0.0
    unread: float = 0.0  # served since this process was last read
    read: bool = False  # read at least once: its later tokens are counted from there


def _exposition(process: _Process) -> str:
    labels = 'endpoint="chat",replica="r1"'
    return (
        "# TYPE inferplane_prompt_tokens counter\n"
        f"inferplane_prompt_tokens_total{{{labels}}} {process.value}\n"
        f"inferplane_prompt_tokens_created{{{labels}}} {process.created}\n"
    )


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=60), watched_before_start=st.booleans())
def test_increases_sum_to_the_tokens_served_while_watched(
    steps: list[tuple[str, object]], watched_before_start: bool
) -> None:
    clock = T0.timestamp()
    # The collector starts watching at T0. The process either started before (its tokens
    # before its first read are not ours to count) or after (all of them are).
    process = _Process(created=clock - 30 if watched_before_start else clock + 1)
    state, counted, expected = CounterState(since=clock), 0.0, 0.0
    for kind, argument in steps:
        clock += 7  # every step takes time: readings are strictly later than the last
        if kind == "serve":
            process.value += float(argument)  # type: ignore[arg-type]
            if process.read or process.created > T0.timestamp():
                process.unread += float(argument)  # type: ignore[arg-type]
        elif kind == "restart_process":
            process = _Process(created=clock)  # its unread tokens die with the old counter
        elif kind == "restart_collector":
            state = CounterState.from_json(state.to_json())
        elif argument:  # a scrape that answered
            at = datetime.fromtimestamp(clock, UTC)
            result = normalize(
                _exposition(process), endpoint="chat", dialect="inferplane", time=at, state=state
            )
            state = result.state
            process.read = True
            counted += sum(s.value for s in result.samples if s.metric == "prompt_tokens")
            expected += process.unread
            process.unread = 0.0
    assert counted == expected


def test_a_reset_without_created_time_still_counts_the_new_process() -> None:
    """Servers that export no ``_created`` (older clients): a value below the last one is
    a restart from zero, as Prometheus' increase() assumes."""
    state = CounterState()
    text = '# TYPE inferplane_prompt_tokens counter\ninferplane_prompt_tokens_total{replica="a"} %s\n'
    totals = []
    for i, value in enumerate((100, 160, 20, 50)):
        result = normalize(
            text % value,
            endpoint="chat",
            dialect="inferplane",
            time=T0 + timedelta(seconds=5 * i),
            state=state,
        )
        state = result.state
        totals += [s.value for s in result.samples if s.metric == "prompt_tokens"]
    assert totals == [60, 20, 30]


@settings(max_examples=200, deadline=None)
@given(
    increases=st.lists(
        st.tuples(st.integers(1, 900), st.floats(0, 50, allow_nan=False)), min_size=1, max_size=80
    )
)
def test_gpu_cost_from_replica_second_increases_is_exact_across_hours(
    increases: list[tuple[int, float]],
) -> None:
    """Each increase of ready replica-seconds lands in the hour of the reading that saw it;
    the hours together cost exactly the replica-seconds times the price."""
    price = GpuPrice(gpu_per_hour_usd=3.6, gpus_per_replica=2)
    at, samples = T0, []
    for step_s, replica_seconds in increases:
        at += timedelta(seconds=step_s)
        samples.append(Sample(at, "chat", "ready_replica_seconds", replica_seconds))
    rows = estimate_costs("chat", price, samples, T0, at + timedelta(seconds=1))
    exact = sum(v for _, v in increases) * 2 * 3.6 / 3600
    assert abs(sum(r.amount for r in rows) - exact) <= 1e-9 * max(1.0, exact)
    assert all(r.period_start.minute == 0 or r.period_start == T0 for r in rows)
