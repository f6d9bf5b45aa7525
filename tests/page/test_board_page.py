"""The OTD board served for real (uvicorn on 127.0.0.1, a trained champion, a recorded run, the
dataset loaded): ``GET /v1/board`` and its export against ``build_board`` over the same data, the
pinned chart library, and the page in a headless Chromium in English and Chinese, clicking
through to the filtered list."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest
from page_world import Server, build_world
from test_page_browser import CHROMIUM, ZH_STAGES, browser, has_cjk, rows, wait_for  # noqa: F401

from data.load import load_dataset
from serving.board import build_board
from serving.runs import latest_run, load_run_rows
from serving.store import open_store

STATIC = Path(__file__).resolve().parents[2] / "serving" / "static"
PINNED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}
"""uPlot 1.6.32 from the npm registry (static/VENDORED.md); an upgrade changes both."""

SCREENSHOT = Path("/tmp/otd-risk-board.png")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("board-home")
    world = build_world(home)
    world.settings = world.settings.model_copy(update={"data": str(home / "world")})
    with Server(world.settings, load_data=True) as server:
        world.url = server.url
        yield world


def get(served, path: str, key: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(served.url + path, params=params, headers=headers, timeout=60)


def expected_board(served):
    dataset = load_dataset(served.settings.data, tz=served.settings.timezone)
    store = open_store(served.settings.serving_store_url)
    run = load_run_rows(store, latest_run(store).run_id)
    return build_board(dataset, dataset.snapshot_time(), run_rows=run, min_risk=0.5), run


def test_the_board_answers_build_boards_figures_with_links_to_the_list(served):
    denied = get(served, "/v1/board")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "missing_api_key"

    answer = get(served, "/v1/board", served.key, lang="en")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    want, run = expected_board(served)
    assert pd.Timestamp(body["as_of"]) == want.as_of
    assert body["summary"]["delivered"] == want.delivered > 100
    assert body["summary"]["on_time"] == want.on_time
    assert body["summary"]["link"] == "/?min_risk=0.5"
    lost = {r["stage"]: r for r in body["lost_by_stage"]}
    for r in want.lost_by_stage.itertuples():
        assert lost[r.stage]["days_lost"] == pytest.approx(r.days_lost)
        assert lost[r.stage]["link"] == f"/?stage={r.stage}&min_risk=0.5"
    assert lost["procurement"]["owner"] == "purchasing"
    assert lost["procurement"]["stage_name"] == "Procurement"

    # The open at-risk figures count the run's rows, and each links to exactly those rows.
    at_risk = run[run["risk"] >= 0.5]
    assert sum(r["orders"] for r in body["open_at_risk"]) == len(at_risk) > 0
    for r in body["open_at_risk"]:
        query = parse_qs(urlsplit(r["link"]).query)
        assert query == {"owner": [r["owner"]], "stage": [r["stage"]], "min_risk": ["0.5"]}
        assert r["orders"] == int((at_risk["top_stage"] == r["stage"]).sum())
    for p in body["plants"]:
        assert p["link"] == f"/?plant={p['plant_id']}&min_risk=0.5"
        listed = get(served, "/v1/orders/at-risk", served.key, plant=p["plant_id"], min_risk=0.5)
        assert listed.json()["total"] == int((at_risk["plant_id"] == p["plant_id"]).sum())

    zh = get(served, "/v1/board", served.key, lang="zh").json()
    assert {r["stage_name"] for r in zh["lost_by_stage"]} <= ZH_STAGES
    assert {r["owner_name"] for r in zh["lost_by_stage"]} >= {"采购", "生产"}

    bad = get(served, "/v1/board", served.key, min_risk=2)
    assert bad.status_code == 422 and "min_risk" in bad.json()["error"]["message"]


def test_the_board_exports_its_tables_to_excel(served):
    from openpyxl import load_workbook

    response = get(served, "/v1/board/export", served.key, lang="zh")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].endswith('.xlsx"')
    book = load_workbook(io.BytesIO(response.content))
    body = get(served, "/v1/board", served.key, lang="zh").json()
    plants = list(book["plants"].values)
    assert [r[0] for r in plants[1:]] == [p["plant_id"] for p in body["plants"]]
    weekly = list(book["weekly"].values)
    assert len(weekly) - 1 == len(body["weekly"])
    stages = {r[0]: r for r in list(book["lost_by_stage"].values)[1:]}
    assert stages["procurement"][1] == "采购"
    assert get(served, "/v1/board/export", served.key, format="csv").status_code == 422


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_served_chart_library_is_the_pinned_file(served, name):
    response = get(served, f"/board/assets/{name}")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == PINNED[name]
    assert PINNED[name] in (STATIC / "VENDORED.md").read_text()
    assert "MIT License" in (STATIC / "uPlot.LICENSE").read_text()
    assert get(served, "/board/assets/VENDORED.md").status_code == 404


def board_rows(driver, table: str) -> list[dict]:
    return driver.execute_script(
        f"""return [...document.querySelectorAll('#{table} tbody tr')].map(tr => ({{
            cells: [...tr.children].map(td => td.textContent),
            links: [...tr.querySelectorAll('a.figure')].map(a => a.getAttribute('href')),
            data: {{...tr.dataset}}}}));"""
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent")
def test_the_board_page_in_english_and_chinese_clicks_through_to_the_list(served, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    want = get(served, "/v1/board", served.key, lang="en").json()
    browser.get(served.url + "/board")
    wait_for(lambda: browser.find_element(By.ID, "api-key").is_displayed(), what="key prompt")
    browser.find_element(By.ID, "api-key").send_keys(served.key)
    browser.find_element(By.ID, "key-save").click()
    wait_for(lambda: browser.execute_script("return document.body.dataset.loaded") == "en")

    # English: the stage table as the API says it, the charts drawn by the vendored uPlot.
    lost = board_rows(browser, "lost-table")
    assert [r["data"]["stage"] for r in lost] == [r["stage"] for r in want["lost_by_stage"]]
    assert lost[0]["cells"][0] == want["lost_by_stage"][0]["stage_name"]
    assert browser.execute_script("return typeof uPlot") == "function"
    for chart in ("weekly-chart", "lost-chart"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{chart} .uplot canvas"), chart
    assert "On-time delivery rate by week" in browser.find_element(By.ID, "weekly").text
    browser.set_window_size(1440, 2400)  # the whole board in one picture, for people
    browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1440, 1000)

    # Chinese: headings, stage and owner names.
    browser.find_element(By.ID, "lang-zh").click()
    wait_for(lambda: browser.execute_script("return document.body.dataset.loaded") == "zh")
    assert browser.find_element(By.CSS_SELECTOR, "#weekly h2").text == "每周准时交付率"
    zh_lost = board_rows(browser, "lost-table")
    assert {r["cells"][0] for r in zh_lost} <= ZH_STAGES
    assert all(has_cjk(r["cells"][1]) for r in zh_lost)
    assert browser.find_elements(By.CSS_SELECTOR, "#weekly-chart .uplot canvas")
    browser.save_screenshot(str(SCREENSHOT.with_name("otd-risk-board-zh.png")))

    # A plant's figure opens the list filtered to that plant's orders at risk.
    plant = board_rows(browser, "plant-table")[0]
    plant_id = plant["data"]["plant"]
    browser.find_element(By.CSS_SELECTOR, f'#plant-table tr[data-plant="{plant_id}"] a').click()
    wait_for(lambda: urlsplit(browser.current_url).path == "/", what="the list")
    wait_for(lambda: rows(browser), what="the list's rows")
    assert browser.find_element(By.ID, "f-plant").get_attribute("value") == plant_id
    assert browser.find_element(By.ID, "f-min-risk").get_attribute("value") == "50"
    scores = served.scores
    expected = scores[(scores["plant_id"] == plant_id) & (scores["risk"] >= 0.5)]
    wait_for(lambda: len(rows(browser)) == min(len(expected), 100), what="the plant's orders")
    shown = rows(browser)
    assert {r["plant"] for r in shown} == {plant_id}
    assert [r["order_id"] for r in shown] == list(expected["order_id"])[:100]

    # Back on the board, a stage's figure opens that stage's orders.
    browser.back()
    wait_for(lambda: browser.execute_script("return document.body.dataset.loaded") == "zh")
    stage = next(r for r in want["open_at_risk"] if r["orders"] > 0)
    link = browser.find_element(By.CSS_SELECTOR, f'#open-table a[href="{stage["link"]}"]')
    assert link.text == str(stage["orders"])
    link.click()
    wait_for(lambda: urlsplit(browser.current_url).path == "/", what="the list")
    assert browser.find_element(By.ID, "f-stage").get_attribute("value") == stage["stage"]
    wait_for(lambda: rows(browser), what="the list's rows")
    # Until the list filters by owner too, the stage and min_risk filters select these orders.
    expected = scores[(scores["top_stage"] == stage["stage"]) & (scores["risk"] >= 0.5)]
    wait_for(lambda: len(rows(browser)) == min(len(expected), 100), what="the stage's orders")
