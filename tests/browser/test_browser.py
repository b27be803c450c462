"""The running app in headless Chromium: pick the tiny model, record, open every view.

The Setup choices live in the URL: the test reloads the page and opens a second tab while
the recording runs, and checks that both still show the choices and the (running or
finished) recording; every view keeps the choices in its URL, and a reloaded view shows
its figures without offering to record again.

Starts `streamlit run app.py` on a free port (tiny model enabled, a temporary store) and
drives Debian's Chromium through Playwright (never a downloaded browser). Screenshots go
to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWS = ["Layer profile", "Representation map", "Language subspaces", "Neurons"]
KEPT = ("en — English", "zh — Mandarin Chinese", "sw — Swahili")
REMOVED = ("ja — Japanese", "fr — French", "es — Spanish", "hi — Hindi", "ar — Standard Arabic")
CHOICE = {"model": "tiny:llama", "langs": "en,zh,sw", "limit": "5"}  # the URL parameters of the choice

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason=f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url} within {timeout} s")


@pytest.fixture
def server(tmp_path):
    yield from _serve(tmp_path)


@pytest.fixture
def tuned_server(tmp_path, monkeypatch):
    """The app over a cache that already holds a finished (2-step) SiLP job of the tiny model."""
    from workbench.finetune import jobs as processes

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    job = processes.start_job("silp", {"source": "tiny:llama"}, {"source": "udhr", "limit": 8, "max_length": 48},
                              {"src": "en", "tgt": "zh", "max_steps": 2})
    assert processes.wait_job(job, timeout_s=300)["state"] == "done"
    yield from _serve(tmp_path)


def _serve(tmp_path, port: int | None = None):
    port = port or _free_port()
    env = {**os.environ, "WORKBENCH_UI_TINY_MODEL": "1", "WORKBENCH_CACHE": str(tmp_path / "cache"),
           "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "server.log", ARTIFACTS / "server.log")


def _no_errors(page) -> None:
    assert page.locator(".stException").count() == 0, page.locator(".stException").first.inner_text()
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()


def _settle(page, timeout: float = 60_000) -> None:
    """Wait until the script run finished (the status widget stops saying 'Running')."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout)


def _screenshot(page, name: str) -> None:
    """Whole-page screenshot: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(1000, min(int(height), 6000))})
    page.wait_for_timeout(800)  # plotly redraws at the new size
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def _url_params(page) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlparse

    return dict(parse_qsl(urlparse(page.url).query))


def _check_choice(page) -> None:
    """The Setup page shows the choice of this test (tiny model, en/zh/sw, 5 units), not the defaults."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Setup")).to_be_visible(timeout=60_000)
    _settle(page)
    expect(page.get_by_role("radio", name="Tiny test model")).to_be_checked()
    expect(page.get_by_role("spinbutton", name="Limit units (optional)")).to_have_value("5")
    for name in KEPT:
        expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()
    for name in REMOVED:
        expect(page.get_by_role("button", name=f"Remove {name}")).to_have_count(0)
    expect(page.get_by_test_id("stMetricValue").nth(1)).to_have_text("5")
    assert {k: v for k, v in _url_params(page).items() if k in CHOICE} == CHOICE, page.url


def _recording_shown(page):
    """The running recording (its progress bar) or its outcome."""
    return page.get_by_test_id("stProgress").or_(page.get_by_text("Recorded 3 languages × 5 sentences")).first


def test_record_and_view_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.goto(server)
            expect(page.get_by_role("heading", name="Setup")).to_be_visible(timeout=60_000)
            page.get_by_text("Tiny test model").click()
            _settle(page)
            # Keep three languages and five units.
            for name in REMOVED:
                page.get_by_role("button", name=f"Remove {name}").click()
                _settle(page)
            limit = page.get_by_role("spinbutton", name="Limit units (optional)")
            limit.fill("5")
            limit.press("Enter")
            _settle(page)
            # The Record button belongs to the settings: wait until the page shows the new ones.
            expect(page.get_by_test_id("stMetricValue").nth(1)).to_have_text("5", timeout=60_000)
            expect(page.get_by_test_id("stMetricValue").nth(0)).to_have_text("0 / 3", timeout=60_000)
            record = page.get_by_role("button", name="Record", exact=True)
            expect(record).to_be_visible(timeout=60_000)
            _no_errors(page)
            record.click()
            expect(_recording_shown(page)).to_be_visible(timeout=60_000)

            # Reload while it records: the choices and the recording are still there.
            page.reload()
            _check_choice(page)
            expect(_recording_shown(page)).to_be_visible(timeout=60_000)
            # A second tab (a bookmark of this address) shows the same choice and the same job.
            second = context.new_page()
            second.goto(page.url)
            _check_choice(second)
            expect(_recording_shown(second)).to_be_visible(timeout=60_000)
            _no_errors(second)

            for tab in (page, second):
                expect(tab.get_by_text("Recorded 3 languages × 5 sentences")).to_be_visible(timeout=180_000)
                _settle(tab)
                _no_errors(tab)
                expect(tab.get_by_text("Working in the background")).to_have_count(0)  # the sidebar is not stale
                expect(tab.get_by_test_id("stMetricValue").nth(0)).to_have_text("3 / 3")
            _screenshot(page, "setup")
            _screenshot(second, "setup-second-tab")
            second.close()

            for view in VIEWS:
                page.get_by_role("link", name=view).first.click()
                expect(page.get_by_role("heading", name=view).first).to_be_visible(timeout=60_000)
                expect(page.locator(".stPlotlyChart .js-plotly-plot").first).to_be_visible(timeout=120_000)
                _settle(page, 120_000)
                _no_errors(page)
                assert page.locator(".stPlotlyChart").count() >= 2
                expect(page).to_have_url(re.compile(r"langs=en%2Czh%2Csw"))  # page switches keep the URL
                assert {k: v for k, v in _url_params(page).items() if k in CHOICE} == CHOICE, page.url
                if view == "Layer profile":  # SiLP's pair pass, recorded from the view itself
                    page.get_by_role("button", name="Record en → zh pass").click()
                    expect(page.locator(".stPlotlyChart")).to_have_count(3, timeout=120_000)
                    expect(page.get_by_text("Projection sensitivity, en → zh")).to_be_visible(timeout=30_000)
                    _settle(page)
                    _no_errors(page)
                    # A reloaded view (a bookmark) shows the stored recording, with no offer to record.
                    page.reload()
                    expect(page.locator(".stPlotlyChart")).to_have_count(3, timeout=120_000)
                    _settle(page, 120_000)
                    _no_errors(page)
                    expect(page.get_by_role("button", name="Record now")).to_have_count(0)
                _screenshot(page, view.lower().replace(" ", "-"))
        finally:
            browser.close()


def test_compare_outputs_and_scores_in_chromium(tuned_server):
    """Any number of states: evaluate in the background, then read outputs and scores."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(tuned_server)
            _settle(page)
            page.get_by_role("link", name="Compare").first.click()
            expect(page.get_by_role("heading", name="Compare").first).to_be_visible(timeout=60_000)
            _settle(page)
            page.get_by_role("tab", name="Outputs").click()
            _settle(page)
            _screenshot(page, "compare-before-evaluate")
            _no_errors(page)
            page.get_by_role("button", name="Evaluate").click()  # a background job with progress
            expect(page.get_by_text("held-out sentences")).to_be_visible(timeout=240_000)
            _settle(page)
            _no_errors(page)
            expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
            _screenshot(page, "compare-outputs")
            page.get_by_role("tab", name="Scores").click()
            expect(page.locator(".stPlotlyChart .js-plotly-plot").first).to_be_visible(timeout=60_000)
            _settle(page)
            _no_errors(page)
            expect(page.get_by_role("button", name="Evaluate")).to_have_count(0)  # served from the store
            _screenshot(page, "compare-scores")
        finally:
            browser.close()


def test_every_page_keeps_its_choices_in_the_url_through_reloads_browsers_and_a_server_restart(tmp_path):
    """A page's choices (here the Fine-tune page's method and steps) live in the URL: a reload, another
    browser, and a reload after the server restarted all show them, in the app's own navigation."""
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    server = _serve(tmp_path, port)
    url = next(server)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/finetune?" + "&".join(f"{k}={v}" for k, v in CHOICE.items()))
            expect(page.get_by_role("heading", name="Fine-tune").first).to_be_visible(timeout=60_000)
            _settle(page)
            page.get_by_text("Mid-align", exact=True).first.click()
            _settle(page)
            steps = page.get_by_role("spinbutton", name="Total steps")
            steps.fill("7")
            steps.press("Enter")
            _settle(page)
            params = _url_params(page)
            assert params.get("ft_method") == "Mid-align" and params.get("ft_steps") == "7", page.url
            deep = page.url

            def shows_the_choices(tab) -> None:
                expect(tab.get_by_role("heading", name="Fine-tune").first).to_be_visible(timeout=60_000)
                _settle(tab)
                expect(tab.get_by_role("radio", name="Mid-align")).to_be_checked()
                expect(tab.get_by_role("spinbutton", name="Total steps")).to_have_value("7")
                nav = tab.get_by_test_id("stSidebarNav")
                expect(nav.get_by_text("Tune", exact=True)).to_be_visible()  # the app's sections, not a file list
                expect(nav.get_by_role("link", name="Fine-tune")).to_be_visible()
                expect(nav.get_by_text("app", exact=True)).to_have_count(0)
                _no_errors(tab)

            page.reload()
            shows_the_choices(page)
            other = browser.new_context().new_page()  # another browser: only the link
            other.goto(deep)
            shows_the_choices(other)
            # The server restarts (same port); the open page reloads its deep link.
            next(server, None)
            server = _serve(tmp_path, port)
            next(server)
            page.reload()
            shows_the_choices(page)
            _screenshot(page, "finetune-after-restart")
            # A link with one unusable value: that choice is dropped with a warning naming it, the others stay.
            bad = browser.new_page(viewport={"width": 1400, "height": 1000})
            bad.goto(url + "/?model=tiny:llama&langs=en,sw&limit=-5")
            expect(bad.get_by_text(re.compile(r"limit=-5.*could not be used and was dropped"))).to_be_visible(
                timeout=60_000)
            _settle(bad)
            for kept in ("en — English", "sw — Swahili"):
                expect(bad.get_by_text(kept, exact=True).first).to_be_visible()
            expect(bad.get_by_text("zh — Mandarin Chinese", exact=False)).to_have_count(0)
            expect(bad.get_by_role("spinbutton", name="Limit units (optional)")).to_have_value("")
            _no_errors(bad)
        finally:
            browser.close()
            next(server, None)
