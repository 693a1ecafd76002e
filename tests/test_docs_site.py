"""The documentation site builds with no warning (``built_site`` in conftest.py), and a real browser renders it:
the built site is served from 127.0.0.1 and opened in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium).

Needs the ``docs`` extra and Chromium; without them the tests are skipped with that reason (CI installs both).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(built_site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1."""
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Headless Chromium with a fresh profile, no network of its own, driven through chromedriver."""
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium is not installed: pip install -e ".[docs]"')
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_site_builds_without_warnings(built_site: Path) -> None:
    assert (built_site / "index.html").is_file() and (built_site / "search" / "search_index.json").is_file()
    assert (built_site / "reference" / "training" / "index.html").is_file()


def _wait(browser, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30).until(condition, message=what)


def test_the_home_page_renders_with_its_navigation(browser, served: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    _wait(browser, lambda b: "hf_reinforce" in b.title, "the home page's title")
    assert browser.find_element(By.TAG_NAME, "h1").text == "hf_reinforce"
    links = [a.get_attribute("textContent").strip() for a in browser.find_elements(By.CSS_SELECTOR, ".md-nav__link")]
    for entry in ("Installation", "Quickstart", "Choose a policy", "The format", "API reference", "Changelog"):
        assert entry in links, f"{entry!r} is not in the navigation: {links}"


def test_an_api_page_renders_from_the_docstrings(browser, served: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/reference/training/")
    heading = _wait(
        browser, lambda b: b.find_element(By.ID, "hf_reinforce.ReinforcedTransform"), "ReinforcedTransform's heading"
    )
    assert heading.is_displayed() and "ReinforcedTransform" in heading.text
    assert browser.find_element(By.ID, "hf_reinforce.distillation_loss").is_displayed()
    active = [
        a.get_attribute("textContent").strip() for a in browser.find_elements(By.CSS_SELECTOR, ".md-nav__link--active")
    ]
    assert "Training" in active, f"the navigation does not mark the page: {active}"


def test_search_finds_a_page(browser, served: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    browser.find_element(By.CSS_SELECTOR, "label.md-header__button[for='__search']").click()
    box = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "input.md-search__input"), "the search box")
    _wait(browser, lambda b: box.is_displayed(), "the search box to open")
    box.send_keys("class mappings")
    links = "return Array.from(document.querySelectorAll('.md-search-result__item a'), a => a.href)"
    # The list is redrawn while the search runs: read the links in one script, not from elements that go stale.
    targets = _wait(browser, lambda b: b.execute_script(links) or False, "search results for 'class mappings'")
    _wait(
        browser,
        lambda b: any("how-to/teachers/" in href for href in b.execute_script(links)),
        f"the teachers how-to among the results (first seen: {targets})",
    )
