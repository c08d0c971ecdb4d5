"""Browser tests: Playwright's sync API driving Debian's `chromium` package.

Never `playwright install`: the browser is the distribution's. When it is missing, it is installed
with apt before the first test runs (as root, with apt-get present), outside the per-test timeout;
otherwise the browser tests fail under CI=true and are skipped elsewhere, with the reason.

Fixtures: `chromium_executable`; `browser` (one headless Chromium, closed after the last test
here); `page` (a fresh context per test, 1366x800); `console_errors` (page errors and console
errors of `page`); `screenshot` (saves `test-artifacts/screenshots/<test>-<label>.png`). A failing
test that uses `page` also leaves `<test>-failure.png` there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).resolve().parent
REPO_ROOT = BROWSER_DIR.parents[1]
ARTIFACTS = Path(os.environ.get("TITAN_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1366, "height": 800}
# Seconds for the whole apt install (apt-get update included when needed).
INSTALL_TIMEOUT = float(os.environ.get("TITAN_BROWSER_INSTALL_TIMEOUT", "900"))
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
APT_OPTIONS = ["-o", "DPkg::Lock::Timeout=120", "-o", "Acquire::Retries=2"]


@dataclass
class ChromiumSetup:
    executable: str | None
    problem: str | None = None


SETUP_KEY = pytest.StashKey[ChromiumSetup]()
CALL_REPORT_KEY = pytest.StashKey[pytest.TestReport]()


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str):
    """Fail under CI (the browser tests must run there), skip elsewhere."""
    if on_ci():
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """TITAN_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium."""
    for candidate in (os.environ.get("TITAN_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def install_chromium(log) -> ChromiumSetup:
    """apt-get install chromium; apt-get update first when apt knows no such package (empty
    package lists, as in a fresh container), or when the install fails (stale lists)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return ChromiumSetup(None, "chromium is not installed and this is not root "
                                   "(install it: apt-get install chromium)")
    if not shutil.which("apt-get"):
        return ChromiumSetup(None, "chromium is not installed and there is no apt-get")
    deadline = time.monotonic() + INSTALL_TIMEOUT

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["apt-get", *APT_OPTIONS, *args]
        log(f"browser tests: running {' '.join(command)}")
        left = max(1.0, deadline - time.monotonic())
        return subprocess.run(command, env=APT_ENV, capture_output=True, text=True, timeout=left,
                              stdin=subprocess.DEVNULL)

    started = time.monotonic()
    try:
        known = subprocess.run(["apt-cache", "show", "chromium"], capture_output=True,
                               timeout=60).returncode == 0
        result = apt("install", "-y", "--no-install-recommends", "chromium") if known else None
        if result is None or result.returncode != 0:  # no package lists yet, or stale ones
            updated = apt("update")
            if updated.returncode != 0:
                return ChromiumSetup(None, f"apt-get update failed: {updated.stderr[-2000:]}")
            result = apt("install", "-y", "--no-install-recommends", "chromium")
    except OSError as error:
        return ChromiumSetup(None, f"could not run apt: {error}")
    except subprocess.TimeoutExpired:
        return ChromiumSetup(None, "installing chromium with apt took over "
                                   f"{INSTALL_TIMEOUT:.0f} s (TITAN_BROWSER_INSTALL_TIMEOUT)")
    if result.returncode != 0:
        return ChromiumSetup(None, "apt-get install chromium failed "
                                   f"(exit {result.returncode}): {result.stderr[-2000:]}")
    executable = find_chromium()
    if executable is None:
        return ChromiumSetup(None, "apt-get installed chromium but no chromium executable is found")
    log(f"browser tests: installed chromium ({executable}) in {time.monotonic() - started:.1f} s")
    return ChromiumSetup(executable)


def resolve_chromium(log) -> ChromiumSetup:
    executable = find_chromium()
    if executable is not None:
        return ChromiumSetup(executable)
    log("browser tests: no chromium found (TITAN_CHROMIUM, PATH, /usr/bin/chromium)")
    return install_chromium(log)


def in_browser_dir(item: pytest.Item) -> bool:
    return BROWSER_DIR in Path(str(item.path)).resolve().parents


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if in_browser_dir(item):
            item.add_marker(pytest.mark.browser)


def pytest_collection_finish(session):
    """Install chromium before the first test (outside pytest-timeout's per-test limit)."""
    if session.config.option.collectonly or not any(map(in_browser_dir, session.items)):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    session.config.stash[SETUP_KEY] = resolve_chromium(log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT_KEY] = report
    return report


@pytest.fixture(scope="session")
def chromium_executable(pytestconfig) -> str:
    setup = pytestconfig.stash.get(SETUP_KEY, None)
    if setup is None:  # the collection hook did not run (e.g. the plugin loaded late)
        setup = resolve_chromium(print)
        pytestconfig.stash[SETUP_KEY] = setup
    if setup.executable is None:
        unavailable(setup.problem or "no chromium")
    return setup.executable


class SharedBrowser:
    """One Playwright driver and headless Chromium, started by the first browser test and closed
    once the tests of tests/browser are done (not kept through the rest of the suite)."""

    def __init__(self) -> None:
        self.manager = None
        self.browser = None

    def get(self, executable: str):
        if self.browser is not None and self.browser.is_connected():
            return self.browser
        self.close()
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as error:
            unavailable(f"playwright is not installed ({error}); pip install -e '.[e2e]'")
        self.manager = sync_playwright().start()
        self.browser = self.manager.chromium.launch(executable_path=executable, headless=True,
                                                    args=LAUNCH_ARGS)
        return self.browser

    def close(self) -> None:
        browser, manager, self.browser, self.manager = self.browser, self.manager, None, None
        try:
            if browser is not None and browser.is_connected():
                browser.close()
        finally:
            if manager is not None:
                manager.stop()


SHARED = SharedBrowser()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last browser test (its fixtures are finalised by then), close the browser."""
    if in_browser_dir(item) and (nextitem is None or not in_browser_dir(nextitem)):
        SHARED.close()


def pytest_sessionfinish(session):
    SHARED.close()


@pytest.fixture(scope="module")
def browser(chromium_executable):
    """The headless Chromium (a playwright.sync_api.Browser) shared by the browser tests."""
    return SHARED.get(chromium_executable)


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    (SCREENSHOTS / f"{safe_name(request.node.name, 'failure')}.png").unlink(missing_ok=True)
    try:
        yield page
        report = request.node.stash.get(CALL_REPORT_KEY, None)
        if report is not None and report.failed:
            try:
                save_screenshot(page, request.node.name, "failure")
            except Exception:  # a screenshot must not hide the failure
                pass
    finally:
        context.close()


@pytest.fixture
def console_errors(page) -> list[str]:
    """Uncaught page errors and console.error messages of `page`, as they come."""
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            errors.append(f"console.error: {message.text}")

    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", on_console)
    return errors


def safe_name(test_name: str, label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{test_name}-{label}").strip("_")


def save_screenshot(page, test_name: str, label: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{safe_name(test_name, label)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture
def screenshot(page, request):
    """screenshot(label, *, full_page=True): saves test-artifacts/screenshots/<test>-<label>.png"""

    def take(label: str, *, full_page: bool = True) -> Path:
        return save_screenshot(page, request.node.name, label, full_page=full_page)

    return take
