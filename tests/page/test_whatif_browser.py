"""What would help, on the planner's page in a real headless Chromium against a real server
with the dataset loaded: an order's detail lists the levers the server tried (the suggestion
first, each with its risk before and after, as ``GET /v1/orders/{id}/levers`` says), and the
"try a change" panel sends a change and shows the answer of ``POST /v1/orders/{id}/what-if``;
in Chinese too."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd
import pytest
import test_page_browser as page_browser
from page_world import Server, build_world
from test_page_browser import CHROMIUM, wait_for

browser = page_browser.browser

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("whatif-page-home"))
    settings = world.settings.model_copy(update={"data": str(world.settings.home / "world")})
    with Server(settings, load_data=True) as server:
        world.url = server.url
        yield world


def open_first_detail(browser, served, lang: str = "en") -> str:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    wait_for(lambda: browser.find_element(By.ID, "api-key").is_displayed(), what="key prompt")
    browser.find_element(By.ID, "api-key").send_keys(served.key)
    browser.find_element(By.ID, "key-save").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "button.order-open"), what="rows")
    if lang == "zh":
        browser.find_element(By.ID, "lang-zh").click()
        html = browser.find_element(By.TAG_NAME, "html")
        wait_for(lambda: html.get_attribute("lang") == "zh-Hans", what="Chinese")
    button = browser.find_elements(By.CSS_SELECTOR, "button.order-open")[0]
    order_id = button.text
    button.click()
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".whatif-levers li[data-lever]"),
        timeout=60,
        what="the levers",
    )
    return order_id


def test_the_detail_lists_the_levers_the_server_tried(served, browser):
    from selenium.webdriver.common.by import By

    order_id = open_first_detail(browser, served)
    shown = [
        (li.get_attribute("data-lever"), li.text)
        for li in browser.find_elements(By.CSS_SELECTOR, ".whatif-levers li[data-lever]")
    ]
    body = httpx.get(
        f"{served.url}/v1/orders/{order_id}/levers",
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=60,
    ).json()
    assert [kind for kind, _ in shown] == [lv["lever"] for lv in body["levers"]]
    for (_, text), lever in zip(shown, body["levers"], strict=True):
        assert text.startswith(lever["summary"])
    best = browser.find_element(By.CSS_SELECTOR, ".whatif-best").text
    if body["best"] is not None:
        assert body["best"]["summary"] in best
    else:
        assert "None of the standard levers" in best


def test_a_planner_tries_a_change_and_sees_the_answer(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    order_id = open_first_detail(browser, served, lang="zh")
    form = browser.find_element(By.CSS_SELECTOR, "form.whatif-form")
    Select(form.find_element(By.NAME, "kind")).select_by_value("due_date_moved")
    row = served.scores.set_index("order_id").loc[order_id]
    later = (pd.Timestamp(row["due_date"]) + timedelta(days=30)).date().isoformat()
    date_input = form.find_element(By.NAME, "date")
    browser.execute_script("arguments[0].value = arguments[1]", date_input, later)
    form.find_element(By.CSS_SELECTOR, "button.whatif-submit").click()
    answer = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, ".whatif-answer .whatif-risk"),
        timeout=60,
        what="the what-if's answer",
    )[0].text
    body = httpx.post(
        f"{served.url}/v1/orders/{order_id}/what-if",
        json={"changes": [{"kind": "due_date_moved", "date": later}]},
        headers={"Authorization": f"Bearer {served.key}"},
        params={"lang": "zh"},
        timeout=60,
    ).json()
    before = f"{body['current']['risk'] * 100:.0f}%"
    after = f"{body['after']['risk'] * 100:.0f}%"
    assert answer.startswith(f"风险 {before} → {after}")
    reasons = [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".whatif-answer ul li")]
    assert reasons == body["after"]["reasons"]
