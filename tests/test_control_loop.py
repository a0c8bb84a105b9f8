"""commands.control.run_until_stopped: SIGTERM stops it, whenever it lands."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.local_servers import wait_for

# Ten jobs due at once: the scheduler is starting a pool thread for each when the SIGTERM
# comes. Shutting the scheduler down inside the signal handler deadlocked there (the
# handler waited for the pool's lock, which the interrupted main thread held): about one
# start in ten hung on this machine.
_LOOP = textwrap.dedent("""
    import sys
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from commands.control import run_until_stopped

    def jobs(scheduler):
        for _ in range(10):
            scheduler.add_job(time.sleep, "interval", args=[0.3], seconds=60, next_run_time=datetime.now(UTC))

    def closed():
        print("closed", flush=True)

    ready = Path(sys.argv[1])
    run_until_stopped([jobs], [closed], on_start=lambda: ready.write_text("ready"))
""")


def test_sigterm_as_soon_as_it_is_ready_stops_it_every_time(tmp_path: Path) -> None:
    outcomes = [_start_and_stop(tmp_path / f"ready-{attempt}") for attempt in range(20)]
    assert [o[:2] for o in outcomes] == [(0, "closed")] * 20, outcomes


# One job that is writing when the SIGTERM comes: it takes a second to finish.
_WRITING = textwrap.dedent("""
    import sys
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from commands.control import run_until_stopped

    ready = Path(sys.argv[1])

    def write():
        ready.write_text("ready")
        time.sleep(1.0)
        print("written", flush=True)

    def jobs(scheduler):
        scheduler.add_job(write, "interval", seconds=60, next_run_time=datetime.now(UTC))

    def closed():
        print("closed", flush=True)

    run_until_stopped([jobs], [closed])
""")


def test_a_job_running_when_the_stop_comes_ends_before_what_it_uses_is_closed(tmp_path: Path) -> None:
    code, out, err = _start_and_stop(tmp_path / "ready", _WRITING)
    assert (code, out.splitlines()) == (0, ["written", "closed"]), err


def _start_and_stop(ready: Path, loop: str = _LOOP) -> tuple[int | None, str, str]:
    """Start the loop, SIGTERM it once it says ready: (exit code, output, stderr's end)."""
    command = [sys.executable, "-c", loop, str(ready)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ready.exists() or process.poll() is not None, 30, "the loop to start")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        return process.returncode, out.strip(), err[-500:]
    except subprocess.TimeoutExpired:
        return None, "hung", ""
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
