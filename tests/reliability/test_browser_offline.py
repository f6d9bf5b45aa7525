"""The API docs and the planner's page in a real headless Chromium, on a machine without internet
access, under the server's Content-Security-Policy: Swagger UI and ReDoc render every operation
from the server's own copies (FastAPI's defaults load them from a CDN: a blank page offline), the
planner's page still works, and the browser reports no blocked script, style or request."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
from reliability_helpers import copy_home, running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: `apt-get install -y chromium chromium-driver`",
    ),
]


@pytest.fixture(scope="module")
def server(trained_home, tmp_path_factory):
    home = copy_home(trained_home.home, tmp_path_factory.mktemp("browser") / "home")
    with running_server(home, data=trained_home.world_dir) as live:
        yield live


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


REDOC_BADGE = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's "API docs by Redocly" footer image: blocked by the policy, as anything from outside
is meant to be (nothing of the docs depends on it)."""


def blocked(driver) -> list[str]:
    """Console messages about something the page could not load or run."""
    words = ("Content Security Policy", "Refused to", "net::ERR", "Failed to load")
    return [
        e["message"]
        for e in driver.get_log("browser")
        if any(w in e["message"] for w in words) and REDOC_BADGE not in e["message"]
    ]


def operations(base: str) -> int:
    spec = httpx.get(f"{base}/openapi.json").json()
    return sum(len(item) for item in spec["paths"].values())


def test_swagger_ui_renders_every_operation_offline(server, browser):
    n = operations(server.base)
    browser.get(server.base + "/docs")
    # An operation under two tags is shown under each: at least one block per operation.
    count = "return document.querySelectorAll('.opblock').length"
    wait_for(lambda: browser.execute_script(count) >= n, what=f"{n} operations in Swagger UI")
    assert "otd-risk" in browser.title
    assert blocked(browser) == []


def test_redoc_renders_every_operation_offline(server, browser):
    n = operations(server.base)
    browser.get(server.base + "/redoc")
    count = "return document.querySelectorAll('[data-section-id^=\"operation/\"]').length"
    wait_for(lambda: browser.execute_script(count) >= n, what=f"{n} operations in ReDoc")
    assert blocked(browser) == []


def test_the_planners_page_works_under_its_policy(server, browser, trained_home):
    from selenium.webdriver.common.by import By

    browser.get(server.base + "/")
    key = wait_for(
        lambda: browser.find_element(By.ID, "api-key").is_displayed()
        and browser.find_element(By.ID, "api-key"),
        what="the key prompt",
    )
    key.send_keys(trained_home.reader_key)
    browser.find_element(By.ID, "key-save").click()
    rows = "return document.querySelectorAll('#orders tbody tr').length"
    wait_for(lambda: browser.execute_script(rows) > 0, what="the ranked rows")
    # The stage bars are sized by script (CSSOM), which the policy allows.
    width = "return document.querySelector('#orders tbody tr .bar .seg').style.width"
    assert browser.execute_script(width).endswith("%")
    assert blocked(browser) == []
