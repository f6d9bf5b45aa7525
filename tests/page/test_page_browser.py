"""The planner's page end to end in a real headless Chromium: key, plant filter, rank order,
Chinese, CSV export."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from page_world import Server, build_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path("/tmp/otd-risk-page.png")
ZH_STAGES = {"订单", "确认", "计划", "采购", "生产", "质检", "仓储", "发运"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: `apt-get install -y chromium chromium-driver`",
    ),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("page-home"))
    with Server(world.settings) as server:
        world.url = server.url
        yield world


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
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1440,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rows(driver) -> list[dict]:
    return driver.execute_script(
        """return [...document.querySelectorAll('#orders tbody tr')].map(tr => ({
            order_id: tr.dataset.orderId, risk: Number(tr.dataset.risk),
            plant: tr.querySelector('td.plant').textContent,
            due: tr.querySelector('td.due').textContent,
            reasons: [...tr.querySelectorAll('ul.reasons li')].map(li => li.textContent),
            top_stage: tr.querySelector('td.top-stage').textContent}));"""
    )


def test_planner_page_end_to_end(served, browser):
    from selenium.webdriver.common.by import By

    scores = served.scores
    browser.get(served.url + "/")
    key_input = wait_for(
        lambda: browser.find_element(By.ID, "api-key").is_displayed()
        and browser.find_element(By.ID, "api-key"),
        what="the key prompt",
    )
    key_input.send_keys(served.key)
    browser.find_element(By.ID, "key-save").click()
    wait_for(lambda: len(rows(browser)) == min(len(scores), 100), what="the ranked rows")
    assert "Model version 1" in browser.find_element(By.ID, "meta-model").text

    # Filter by plant: exactly that plant's orders, in rank order (risk descending).
    plant = scores["plant_id"].value_counts().index[0]
    expected = scores[scores["plant_id"] == plant]
    browser.find_element(By.ID, "f-plant").send_keys(plant)
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: {r["plant"] for r in rows(browser)} == {plant}, what="the plant filter")
    shown = rows(browser)
    assert [r["order_id"] for r in shown] == list(expected["order_id"])
    risks = [r["risk"] for r in shown]
    assert risks == sorted(risks, reverse=True) and len(risks) == len(expected) >= 5

    # The key is kept for the browser session: a reload does not ask again.
    browser.refresh()
    wait_for(lambda: browser.find_element(By.ID, "main").is_displayed(), what="no prompt")
    assert not browser.find_element(By.ID, "key-panel").is_displayed()
    browser.find_element(By.ID, "f-plant").send_keys(plant)
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: {r["plant"] for r in rows(browser)} == {plant}, what="the plant filter")

    # Chinese: headers, stage names, filter options, and the reasons of the same orders.
    browser.find_element(By.ID, "lang-zh").click()
    wait_for(lambda: "风险" in browser.find_element(By.ID, "orders").text, what="Chinese")
    wait_for(lambda: {r["top_stage"] for r in rows(browser)} <= ZH_STAGES, what="zh stages")
    wait_for(
        lambda: any(has_cjk(s) for r in rows(browser) for s in r["reasons"]), what="zh reasons"
    )
    zh_rows = rows(browser)
    assert [r["order_id"] for r in zh_rows] == list(expected["order_id"])
    said = [s for r in zh_rows for s in r["reasons"]]
    assert said and all(has_cjk(s) for s in said)
    assert [r["reasons"] for r in zh_rows] == expected["reasons_zh"].tolist()
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "可能逾期交付的订单"
    options = browser.find_elements(By.CSS_SELECTOR, "#f-stage option")
    assert {o.text for o in options[1:]} == ZH_STAGES
    browser.save_screenshot(str(SCREENSHOT))

    # Export the current view to CSV and read the file.
    browser.find_element(By.ID, "export-csv").click()
    files = wait_for(lambda: list(browser.downloads.glob("*.csv")), what="the CSV download")
    from serving.runs import latest_run

    # Named as the server names it (Content-Disposition), not a fixed name.
    stamp = latest_run(served.settings.home).created_at.strftime("%Y%m%d-%H%M")
    assert files[0].name == f"otd-risk-at-risk-{stamp}.csv"
    data = files[0].read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel on Chinese Windows reads UTF-8
    csv = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype={"order_id": str})
    assert list(csv["order_id"]) == list(expected["order_id"])
    assert set(csv["plant_id"]) == {plant}
    assert csv["risk"].to_numpy() == pytest.approx(expected["risk"].to_numpy())
    assert set(csv["top_stage_name"]) <= ZH_STAGES
    assert set(csv["model_version"].astype(str)) == {"1"}


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_due_window_filter(served, browser):
    """ "Due from" and "due before" go to the API: every row shown is due inside the window
    (from inclusive, before exclusive), and every order of the run in it is shown."""
    from selenium.webdriver.common.by import By

    scores = served.scores
    dates = sorted(scores["due_date"].dt.date.unique())
    start, end = dates[len(dates) // 4], dates[len(dates) // 2]
    due = scores["due_date"].dt.date
    expected = scores[(due >= start) & (due < end)]
    assert 5 <= len(expected) <= 100 and (due == start).any()

    browser.get(served.url + "/")
    browser.execute_script(f"sessionStorage.setItem('otd-risk.key', '{served.key}')")
    browser.refresh()
    wait_for(lambda: len(rows(browser)) > 0, what="the ranked rows")
    for field, day in (("f-due-after", start), ("f-due-before", end)):
        # A date input takes the value through script: typing follows the browser's locale.
        browser.execute_script(
            "arguments[0].value = arguments[1]", browser.find_element(By.ID, field), str(day)
        )
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: len(rows(browser)) == len(expected), what="the due window")
    shown = rows(browser)
    assert all(str(start) <= r["due"] < str(end) for r in shown)
    assert [r["order_id"] for r in shown] == list(expected["order_id"])
    assert str(start) in {r["due"] for r in shown}  # the lower bound is inclusive


def test_page_is_readable_on_a_tablet(served, browser):
    from selenium.webdriver.common.by import By

    browser.set_window_size(800, 1100)
    browser.get(served.url + "/?")
    browser.execute_script(f"sessionStorage.setItem('otd-risk.key', '{served.key}')")
    browser.refresh()
    wait_for(lambda: len(rows(browser)) > 0, what="rows on a tablet")
    # Cards: no horizontal scrolling of the page.
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 800
    first = browser.find_element(By.CSS_SELECTOR, "#orders tbody tr")
    assert first.find_element(By.CSS_SELECTOR, ".bar").size["width"] > 100
    browser.save_screenshot("/tmp/otd-risk-page-tablet.png")
