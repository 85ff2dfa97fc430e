"""Swagger UI and ReDoc in a real headless Chromium, against a running server.

Uses Debian's `chromium` through Playwright (never `playwright install`: nothing is downloaded).
Skipped with a reason where no Chromium is installed; under CI=true that is a failure, and
`.ci/run` installs the package. Screenshots go to artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Request, sync_playwright

from tests.support.servers import ServerProcess, serve

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# Flags that keep Chromium quiet and self-contained in a container: no sandbox (root), no GPU,
# and none of its own background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chromium_executable() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    if executable is None:
        reason = "no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser test must run under CI=true: {reason}")
        pytest.skip(reason)
    # Playwright makes a fresh temporary profile (user data dir) for each launch.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # No rate limits: the page and the setup calls come in a quick burst.
    with serve(tmp_path_factory.mktemp("docs-server"), RATE_LIMIT_ENABLED="false") as running:
        yield running


class WatchedPage:
    """A fresh page that records its requests and script errors."""

    def __init__(self, browser: Browser, base_url: str, height: int) -> None:
        self.base_url = base_url
        self.page = browser.new_page(viewport={"width": 1280, "height": height})
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def escaped(self) -> list[str]:
        """Requests that left this server: there must be none."""
        # A request the page's Content-Security-Policy stopped never reached the network.
        return [
            request.url
            for request in self.requests
            if not request.url.startswith((self.base_url, f"blob:{self.base_url}", "data:"))
            and request.failure != "csp"
        ]


def test_swagger_ui_books_a_ticket_with_a_token_from_login(
    browser: Browser, server: ServerProcess
) -> None:
    credentials = {"username": "swagger_user", "password": "password123"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/register", json=credentials).status_code == 201
        token = http.post("/login", json=credentials).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        created = http.post("/initialize", json={"name": "Browser gig", "tickets": 3}, headers=auth)
        event_id = created.json()["eventId"]

    watched = WatchedPage(browser, server.base_url, height=1000)
    page = watched.page
    page.goto(f"{server.base_url}/docs")
    operation = page.locator("#operations-bookings-book_ticket")
    operation.wait_for()

    # Authorize with the token, as a user pastes it.
    page.locator(".auth-wrapper button.authorize").click()
    page.locator("#auth-bearer-value").fill(token)
    page.get_by_label("Apply credentials").click()
    page.locator(".modal-ux button.btn-done").click()

    operation.locator(".opblock-summary-control").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("textarea.body-param__text").fill(json.dumps({"eventId": event_id}))
    operation.locator("button.execute").click()

    answer = operation.locator(".live-responses-table .response")
    answer.wait_for()
    shown_status = answer.locator(".response-col_status").inner_text().strip()
    shown_body = json.loads(answer.locator(".response-col_description pre").first.inner_text())
    curl = operation.locator(".curl-command").inner_text()
    save_screenshot(page, operation, answer, ARTIFACTS / "swagger-book-ticket.png")

    assert shown_status == "201"
    assert shown_body["message"] == "Ticket booked"
    assert shown_body["eventId"] == event_id
    assert f"Authorization: Bearer {token}" in curl, "the Authorize dialog's token was sent"
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        mine = http.get("/me/bookings", headers=auth).json()["items"]
    assert [(b["eventId"], b["status"]) for b in mine] == [(event_id, "confirmed")]
    assert watched.escaped() == [], "Swagger UI must load nothing from other hosts"
    assert watched.errors == []


def test_redoc_renders_the_operations(browser: Browser, server: ServerProcess) -> None:
    watched = WatchedPage(browser, server.base_url, height=900)
    page = watched.page
    page.goto(f"{server.base_url}/redoc")
    section = page.locator('[data-section-id="operation/book_ticket"]')
    section.wait_for()
    section.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "redoc-book-ticket.png")

    assert section.locator("h2").first.inner_text() == "Book a ticket"
    assert page.locator('[data-section-id="operation/register"]').count() == 1
    assert watched.escaped() == [], "ReDoc must load nothing from other hosts"
    assert watched.errors == []


def save_screenshot(page: Page, operation: Locator, answer: Locator, path: Path) -> None:
    """The operation from its header down to the server's answer: the part a person checks."""
    page.evaluate("window.scrollTo(0, 0)")
    top, bottom = operation.bounding_box(), answer.bounding_box()
    assert top is not None
    assert bottom is not None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(
        path=path,
        full_page=True,
        clip={
            "x": top["x"],
            "y": top["y"],
            "width": top["width"],
            "height": bottom["y"] + bottom["height"] - top["y"] + 16,
        },
    )
