"""Browser tests of the console: the real app (API + console) on a free loopback port, over
in-memory storage seeded with the demo organization, driven by Debian's Chromium via Playwright.

Never ``playwright install``: the tests use the system's ``/usr/bin/chromium`` and are skipped,
with a loud reason, when it is missing (``apt-get install -y chromium``; ``.ci/run`` does it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"

NO_CHROMIUM = ("CONSOLE BROWSER TESTS SKIPPED: /usr/bin/chromium is missing "
               "(install it with `apt-get install -y chromium`; .ci/run does so when run as root)")
HERE = Path(__file__).resolve().parent



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "screenshots: regenerates docs/screenshots/*.png "
                                       "(runs only with BILLING_CONSOLE_SCREENSHOTS=1)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CHROMIUM.exists():
        terminalreporter.write_line(NO_CHROMIUM, red=True, bold=True)


@dataclass(frozen=True)
class ConsoleServer:
    base_url: str
    organization_id: str
    tokens: dict[str, str]
    container: Any
    """The app's dependency-injector container (untyped), to arrange state behind the API."""

    def url(self, path: str) -> str:
        return f"{self.base_url}/console{path}"


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(container: Any, sock: socket.socket) -> Iterator[str]:
    """The app over ``container`` on ``sock`` (uvicorn in a thread) until the block ends; yields its base URL."""
    import uvicorn

    from entrypoints.http.app import create_app

    app = create_app(container)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="console-uvicorn")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    from dependency_injector import providers

    from entrypoints.container import Container, settings_from_env
    from entrypoints.demo import seed_demo

    # The environment this server would read (BILLING_STORAGE=memory), given to the container
    # by overriding its settings provider: the process environment is left alone.
    settings = settings_from_env({"BILLING_STORAGE": "memory", "BILLING_ENV": "test", "BILLING_DEMO": "0",
                                  "BILLING_DATA_DIR": str(tmp_path_factory.mktemp("console-data"))})
    container = Container()
    container.settings.override(providers.Object(settings))
    credentials = seed_demo(container.billing_context(), container.deliverers())
    try:
        with serving(container, free_socket()) as base_url:
            yield ConsoleServer(base_url=base_url, organization_id=str(credentials.organization_id),
                                tokens=dict(credentials.tokens), container=container)
    finally:
        container.settings.reset_override()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900},
                                  locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield page
    # Expected 403/4xx answers show as failed-resource console errors; scripts must never throw.
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def open_page(page: Page, server: ConsoleServer, path: str) -> None:
    """Go to a console page and wait until its module has rendered (``body[data-ready]``)."""
    page.goto(server.url(path))
    page.wait_for_selector("body[data-ready]")


def sign_in(page: Page, server: ConsoleServer, role: str, *, then: str = "/billing/overview") -> None:
    """Sign in through the sign-in page with the demo token of ``role``, then open ``then``."""
    open_page(page, server, "/")
    page.get_by_label("API token").fill(server.tokens[role])
    page.get_by_label("Organization ID").fill(server.organization_id)
    page.get_by_label(role, exact=True).check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/billing/overview")
    page.wait_for_selector("body[data-ready]")
    if then != "/billing/overview":
        open_page(page, server, then)
