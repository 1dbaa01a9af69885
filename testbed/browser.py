"""Headless Chromium for the console tests: the browser, a signed-in page and a cross-site page server.

A pytest plugin (tests/conftest.py lists it): `browser` is one Debian Chromium per test module, driven by
Playwright (hack/chromium, never a downloaded browser); `attacker_site` is another origin for the
cross-site tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from hack.chromium import launch_chromium
from kubeinfer.engines.llamacpp_server import free_port

#: Upper bound for a page to get somewhere; never a measured duration.
PAGE_WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def open_context(browser: Browser, base_url: str) -> BrowserContext:
    """A fresh browser profile (no cookies) on the console at `base_url`; downloads are kept."""
    context = browser.new_context(base_url=base_url, accept_downloads=True)
    context.set_default_timeout(PAGE_WAIT_MS)
    return context


def sign_in(page: Page, key: str) -> None:
    """Through the login form, as a person does."""
    page.goto("/ui/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("project")).to_be_visible()


def signed_in_page(browser: Browser, base_url: str, key: str) -> Page:
    """A page of a fresh profile signed in with `key`; close it with `page.context.close()`."""
    page = open_context(browser, base_url).new_page()
    sign_in(page, key)
    return page


@pytest.fixture
def attacker_site() -> Iterator[tuple[str, list[bytes]]]:
    """Another origin (another port) serving whatever page the test puts into the list."""
    pages: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(pages[-1])

        def log_message(self, *args: Any) -> None:
            """Quiet: the test asserts on what the browser saw, not on this server's access log."""

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    thread.join(timeout=10)
