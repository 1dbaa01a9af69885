"""Debian's chromium for Playwright: the tests and `make screenshots` never download a browser."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, Playwright


class ChromiumMissingError(RuntimeError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"no chromium at {path}: run `make chromium` (Debian's package) or set CHROMIUM_BIN")


def chromium_path() -> Path:
    return Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Chromium from `chromium_path()`; raises ChromiumMissingError saying how to install it."""
    path = chromium_path()
    if not path.is_file():
        raise ChromiumMissingError(path)
    return playwright.chromium.launch(executable_path=str(path), headless=True)
