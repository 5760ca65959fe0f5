"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by its ``chromedriver``.

Selenium is told where the system chromedriver is, so it never downloads one (and
``SE_OFFLINE`` keeps its driver manager from trying). Without the two packages the tests skip
and say how to get them; in CI (``CI=true``) a missing browser fails them instead.

Selenium blocks, so :class:`Browser` runs each call in a worker thread while the servers the
page talks to keep running on the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

INSTALL_HINT = (
    "install Debian's packages with `apt-get install chromium chromium-driver` (as root), "
    "or run .ci/run, which does"
)

# Every wait is short: a page here comes from a loopback server in milliseconds, and each test
# must end well inside the 60 s per-test timeout even when something hangs.
PAGE_LOAD_TIMEOUT = 15.0
WAIT = 10.0


def find_chromium() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` paths from ``PATH``, or a line saying what is missing."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = " and ".join(
        name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path
    )
    return f"no {missing} on PATH: {INSTALL_HINT}"


def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """A headless Chromium session, or a skip (a failure in CI) when there is none."""
    found = find_chromium()
    if isinstance(found, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI, but there is {found}")
        pytest.skip(found)
    browser, driver_path = found
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1000,800",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.implicitly_wait(0)  # explicit waits below, each bounded by WAIT
        yield driver
    finally:
        driver.quit()


class Browser:
    """Async helpers over a WebDriver: each call runs in a thread, each wait is bounded.

    Example::

        await browser.open(f"{site}/")
        await browser.type("#instance", server_url)
        await browser.click("#sign-in-button")
        assert "Alice" in await browser.text("#who")
    """

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def find(self, css: str) -> WebElement:
        """The first element matching ``css``, once it is on the page."""

        def wait() -> WebElement:
            located = expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
            element: WebElement = WebDriverWait(self.driver, WAIT).until(located)
            return element

        return await asyncio.to_thread(wait)

    async def texts(self, css: str) -> list[str]:
        """The text of every element matching ``css`` (none: an empty list, no wait)."""

        def read() -> list[str]:
            return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]

        return await asyncio.to_thread(read)

    async def type(self, css: str, text: str) -> None:
        element = await self.find(css)
        await asyncio.to_thread(element.clear)
        await asyncio.to_thread(element.send_keys, text)

    async def click(self, css: str) -> None:
        element = await self.find(css)
        await asyncio.to_thread(element.click)

    async def text(self, css: str) -> str:
        element = await self.find(css)
        text: str = await asyncio.to_thread(lambda: element.text)
        return text

    async def url(self) -> str:
        current: str = await asyncio.to_thread(lambda: self.driver.current_url)
        return current

    async def wait_for_url(self, prefix: str) -> str:
        """Wait until the page's URL starts with ``prefix``; returns the URL."""

        def wait() -> str:
            WebDriverWait(self.driver, WAIT).until(
                lambda driver: driver.current_url.startswith(prefix)
            )
            current: str = self.driver.current_url
            return current

        return await asyncio.to_thread(wait)

    async def cookies(self) -> list[dict[str, object]]:
        cookies: list[dict[str, object]] = await asyncio.to_thread(self.driver.get_cookies)
        return cookies

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = await asyncio.to_thread(self.driver.save_screenshot, str(path))
        assert saved, f"the screenshot could not be written to {path}"
