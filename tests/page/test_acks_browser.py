"""The planner's page with owners and acknowledgements, in a real headless Chromium against a
real server: each order's owner, the owner filter, a planner marking an order handled (it leaves
the worklist, shows under "handled only" with who and the note), withdrawing it, and a reader's
attempt refused with the server's message; in Chinese too."""

from __future__ import annotations

import pytest
import test_page_browser as page_browser
from page_world import Server, build_world
from test_page_browser import CHROMIUM, wait_for

from serving.keys import create_key
from serving.owners import DEFAULT_STAGE_OWNERS, owner_of
from serving.store import home_store

browser = page_browser.browser
"""The page tests' headless Chromium (a fixture of theirs, reused)."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("acks-page-home"))
    world.planner_key = create_key(home_store(world.settings.home), "planner", "Li Wei").key
    with Server(world.settings) as server:
        world.url = server.url
        yield world


def shown(driver) -> list[dict]:
    return driver.execute_script(
        """return [...document.querySelectorAll('#orders tbody tr.order-row')].map(tr => ({
            order_id: tr.dataset.orderId,
            owner: tr.querySelector('td.owner').textContent,
            handled: tr.querySelector('td.handled-cell').textContent}));"""
    )


def first_id(driver) -> str | None:
    rows = shown(driver)
    return rows[0]["order_id"] if rows else None


def open_page(browser, served, key: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    wait_for(lambda: browser.find_element(By.ID, "api-key").is_displayed(), what="key prompt")
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "key-save").click()
    wait_for(lambda: len(shown(browser)) == min(len(served.scores), 100), what="the rows")


def test_a_planner_marks_an_order_handled_and_withdraws_it(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, served, served.planner_key)
    rows = shown(browser)
    top = served.scores.iloc[0]
    assert rows[0]["order_id"] == top["order_id"]
    assert rows[0]["owner"] == owner_of(top["top_stage"], DEFAULT_STAGE_OWNERS).en
    # The owner filter: only that department's orders.
    owner = rows[0]["owner"]
    browser.find_element(By.ID, "f-owner").send_keys(owner)
    browser.find_element(By.ID, "apply").click()
    expected = [
        o
        for o, s in zip(served.scores["order_id"], served.scores["top_stage"], strict=True)
        if owner_of(s, DEFAULT_STAGE_OWNERS).en == owner
    ][:100]
    wait_for(lambda: [r["order_id"] for r in shown(browser)] == expected, what="owner filter")
    browser.find_element(By.ID, "clear").click()
    wait_for(lambda: len(shown(browser)) == min(len(served.scores), 100), what="cleared")

    # Mark the riskiest order handled, with a note.
    first = browser.find_element(By.CSS_SELECTOR, "#orders tbody tr.order-row")
    first.find_element(By.CSS_SELECTOR, "button.ack-mark").click()
    form = first.find_element(By.CSS_SELECTOR, "form.ack-form")
    form.find_element(By.NAME, "note").send_keys("called supplier, ships Friday")
    form.find_element(By.CSS_SELECTOR, "button.ack-save").click()
    wait_for(
        lambda: top["order_id"] not in [r["order_id"] for r in shown(browser)],
        what="the order off the worklist",
    )
    Select(browser.find_element(By.ID, "f-handled")).select_by_value("true")
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: [r["order_id"] for r in shown(browser)] == [top["order_id"]], what="handled")
    cell = shown(browser)[0]["handled"]
    assert "Li Wei" in cell and "called supplier, ships Friday" in cell

    # In Chinese: the owner's Chinese name and the handled line.
    browser.find_element(By.ID, "lang-zh").click()
    wait_for(lambda: "已处理" in "".join(r["handled"] for r in shown(browser)), what="Chinese")
    assert shown(browser)[0]["owner"] == owner_of(top["top_stage"], DEFAULT_STAGE_OWNERS).zh
    browser.find_element(By.ID, "lang-en").click()
    wait_for(lambda: "Handled by" in "".join(r["handled"] for r in shown(browser)), what="English")

    # Withdraw: back on the worklist.
    browser.find_element(By.CSS_SELECTOR, "button.ack-withdraw").click()
    wait_for(lambda: shown(browser) == [], what="nothing handled")
    Select(browser.find_element(By.ID, "f-handled")).select_by_value("false")
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: first_id(browser) == top["order_id"], what="back on the list")


def test_a_reader_cannot_mark_an_order_handled(served, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, served, served.key)
    first = browser.find_element(By.CSS_SELECTOR, "#orders tbody tr.order-row")
    first.find_element(By.CSS_SELECTOR, "button.ack-mark").click()
    first.find_element(By.CSS_SELECTOR, "button.ack-save").click()
    error = browser.find_element(By.ID, "error")
    wait_for(lambda: error.is_displayed() and "403" in error.text, what="the refusal")
    assert "planner" in error.text
    assert shown(browser)[0]["order_id"] == served.scores.iloc[0]["order_id"]
