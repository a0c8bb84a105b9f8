"""The dashboard in a real browser: ``inferplane dashboard --sample-data`` on a free port,
every page opened in headless Chromium (Debian's, driven by Playwright), rendered to the
end, screenshotted, and failed on any Streamlit error box.

Screenshots stay in ``test-artifacts/screenshots/`` (ignored by git, kept by CI). With
``INFERPLANE_UPDATE_README_SCREENSHOT=1`` the overview's also replaces
``docs/img/dashboard-overview.png``, the README's picture.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local_servers import free_port, streamlit_healthy, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
README_SCREENSHOT = ROOT / "docs" / "img" / "dashboard-overview.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# (URL path, a heading the page shows once rendered).
PAGES = [
    ("", "Overview"),
    ("cost_performance", "Cost versus performance"),
    ("autoscaler", "Autoscaler"),
    ("alerts", "Alerts"),
    ("what_if", "What-if"),
]
# Python's and Streamlit's own error words; "Error" alone as a word, not "error" in prose.
_ERROR_TEXT = re.compile(r"\bError\b|\b\w+(Error|Exception)\b|Traceback")
_START_TIMEOUT_S = 120.0
_RENDER_TIMEOUT_MS = 60_000


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: test.sh installs it (apt-get install chromium)"
    return path


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard over a generated sample, started as a user starts it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    cli = Path(sys.executable).with_name("inferplane")
    argv = [str(cli), "dashboard", "--sample-data", "--port", str(port), "--host", "127.0.0.1"]
    env = {**os.environ, "INFERPLANE_HOME": str(log_path.parent)}
    with log_path.open("wb") as log:
        # Its own session: the dashboard may start Streamlit as a child; the group goes together.
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: streamlit_healthy(url) or process.poll() is not None, _START_TIMEOUT_S, "the dashboard"
        )
        assert process.poll() is None, f"the dashboard exited: {log_path.read_text(errors='replace')[-3000:]}"
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command (it stops Streamlit and removes its sample), then SIGKILL to
    whatever of its process group is left."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is gone: everything stopped
    process.wait(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _rendered(page: Any) -> None:
    """Wait until the script run is over (connected, not running, no status widget), the
    lazily loaded elements have replaced their skeletons (plotly and dataframes load
    seconds after the run ends), and every plotly chart has drawn its SVG."""
    app = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
    page.locator(app).wait_for(timeout=_RENDER_TIMEOUT_MS)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=_RENDER_TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]') && [...document.querySelectorAll("
        "'[data-testid=\"stPlotlyChart\"]')].every(chart => chart.querySelector('.main-svg'))",
        timeout=_RENDER_TIMEOUT_MS,
    )


def _screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot; the viewport grows to the main area's height first (the
    main area scrolls inside its own element, which a full-page capture would cut)."""
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll("
        "'[data-testid=\"stMain\"], section.main')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 40, 900), 8000)})
    _rendered(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.parametrize(("path", "heading"), PAGES, ids=[heading for _, heading in PAGES])
def test_page_renders_in_chromium_without_errors(
    dashboard_url: str, browser: Any, path: str, heading: str
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{dashboard_url}/{path}", timeout=_RENDER_TIMEOUT_MS)
        page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=_RENDER_TIMEOUT_MS)
        _rendered(page)
        shot = _screenshot(page, path or "overview")
        assert shot.stat().st_size > 10_000, "the screenshot is (nearly) blank"
        exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert (exceptions, errors) == ([], []), f"{heading}: Streamlit shows errors (see {shot})"
        text = page.locator('[data-testid="stApp"]').inner_text()
        assert not _ERROR_TEXT.search(text), f"{heading}: error text on the page (see {shot}): {text[:2000]}"
        assert page.locator('[data-testid="stPlotlyChart"], [data-testid="stMetric"]').count() > 0
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0  # a viewer's toolbar
        if not path and os.environ.get("INFERPLANE_UPDATE_README_SCREENSHOT") == "1":
            README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, README_SCREENSHOT)
    finally:
        page.close()
