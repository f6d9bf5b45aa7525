"""The planner's page end to end in a real headless Chromium: key, plant filter, rank order,
Chinese, CSV export; the delivery forecast (predicted date, 80% interval, past-due badge, the
days-per-stage bar, the order's detail with its signals) and its filters."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from page_world import Server, build_world

from serving.store import home_store

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
        """return [...document.querySelectorAll('#orders tbody tr.order-row')].map(tr => ({
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
    stamp = latest_run(home_store(served.settings.home)).created_at.strftime("%Y%m%d-%H%M")
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
    first = browser.find_element(By.CSS_SELECTOR, "#orders tbody tr.order-row")
    assert first.find_element(By.CSS_SELECTOR, ".bar").size["width"] > 100
    browser.save_screenshot("/tmp/otd-risk-page-tablet.png")


def forecasts(driver) -> list[dict]:
    """What each shown row says of its forecast: the date, the interval, the badge, the bar's
    segments (stage, width in % of the cell, days) and its caption."""
    return driver.execute_script(
        """return [...document.querySelectorAll('#orders tbody tr.order-row')].map(tr => {
            const text = (sel) => tr.querySelector(sel)?.textContent ?? null;
            return {
              order_id: tr.dataset.orderId,
              date: text('td.delivery .fc-date'),
              interval: text('td.delivery .fc-interval'),
              badge: text('td.delivery .badge.past-due'),
              segments: [...tr.querySelectorAll('td.bars .bar.days .seg')].map(s => ({
                stage: s.dataset.stage, width: parseFloat(s.style.width),
                days: Number(s.dataset.days)})),
              caption: [...tr.querySelectorAll('td.bars .bar-caption span')].map(
                s => s.dataset.stage),
              top_stage: text('td.top-stage'),
            };
          });"""
    )


def open_page(served, browser) -> None:
    browser.get(served.url + "/")
    browser.execute_script(f"sessionStorage.setItem('otd-risk.key', '{served.key}')")
    browser.refresh()
    wait_for(lambda: len(rows(browser)) == min(len(served.scores), 100), what="the ranked rows")


def day_after_due(due: pd.Timestamp, days_late: float) -> str:
    """The calendar date ``days_late`` days after the end of the due date."""
    return (due + pd.Timedelta(days=1) + pd.Timedelta(days=days_late)).strftime("%Y-%m-%d")


def test_forecast_date_interval_badge_and_days_per_stage(served, browser):
    from data.contract import STAGES

    scores = served.scores.set_index("order_id")
    open_page(served, browser)
    shown = forecasts(browser)
    assert [r["order_id"] for r in shown] == served.scores["order_id"].tolist()
    ratios = []
    for row in shown:
        want = scores.loc[row["order_id"]]
        assert row["date"] == want["predicted_delivery_date"], row
        low = day_after_due(want["due_date"], want["days_late_p10"])
        high = day_after_due(want["due_date"], want["days_late_p90"])
        assert row["interval"] == f"80%: {low} – {high}", row
        # The badge exactly on the orders past their due date, with the days.
        if want["past_due_days"] > 0:
            assert row["badge"] == f"Past due {want['past_due_days']:.1f} d", row
        else:
            assert row["badge"] is None, row
        # The bar: one segment per stage adding days if the order is late, in process order,
        # as long as those days.
        adds = [s for s in STAGES if want[f"stage_days_if_late_{s}"] > 0]
        assert [s["stage"] for s in row["segments"]] == adds, row
        for segment in row["segments"]:
            days = want[f"stage_days_if_late_{segment['stage']}"]
            assert segment["days"] == pytest.approx(days)
            ratios.append(segment["width"] / segment["days"])
        # The longest segment is the top stage, named first under the bar (an order no stage
        # adds days to has no bar; its top stage is the model's).
        if row["segments"]:
            longest = max(row["segments"], key=lambda s: s["days"])["stage"]
            assert longest == want["top_stage"] == row["caption"][0], row
            assert row["top_stage"] == longest.capitalize()
    assert sum(bool(r["segments"]) for r in shown) >= 0.9 * len(shown)
    # One scale for the page: width per day is the same on every row.
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)  # CSS keeps 6 digits
    past_due = [r for r in shown if r["badge"]]
    assert len(past_due) == (served.scores["past_due_days"] > 0).sum() >= 3
    # Past-due orders come first, certain.
    assert [r["order_id"] for r in shown[: len(past_due)]] == [r["order_id"] for r in past_due]
    legend = browser.find_element("id", "legend").text
    assert "days each stage adds" in legend
    browser.save_screenshot("/tmp/otd-risk-page-forecast.png")


def test_an_orders_detail_shows_every_stages_days_and_its_signals(served, browser):
    from selenium.webdriver.common.by import By

    from data.contract import STAGES

    open_page(served, browser)
    row = served.scores.iloc[0]
    browser.find_element(By.CSS_SELECTOR, "tr.order-row button.order-open").click()
    detail = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "tr.detail"), what="the detail row"
    )[0]
    assert detail.get_attribute("data-detail-of") == row["order_id"]
    listed = {
        li.get_attribute("data-stage"): li.text
        for li in detail.find_elements(By.CSS_SELECTOR, ".detail-stage-days li")
    }
    have = [s for s in STAGES if pd.notna(row[f"stage_days_{s}"])]
    assert list(listed) == have
    for stage in have:
        days = row[f"stage_days_{stage}"]
        sign = "+" if days >= 0 else "\u2212"
        assert listed[stage].endswith(f"{sign}{abs(days):.1f}"), listed[stage]
    text = detail.find_element(By.CSS_SELECTOR, ".detail-forecast").text
    assert f"80% between {row['days_late_p10']:.1f} and {row['days_late_p90']:.1f}" in text
    assert f"95% between {row['days_late_p025']:.1f} and {row['days_late_p975']:.1f}" in text
    # The model's signals (log-odds) are here, labelled as such, not in the list's bar.
    assert "log-odds" in detail.text
    signals = detail.find_elements(By.CSS_SELECTOR, ".bar.signals .seg")
    positive = [s for s in ("order", *STAGES) if row[f"stage_{s}"] > 0]
    assert [s.get_attribute("data-stage") for s in signals] == positive
    # A second click closes it.
    browser.find_element(By.CSS_SELECTOR, "tr.order-row button.order-open").click()
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, "tr.detail"), what="closed")


def test_past_due_and_min_days_late_filters(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    scores = served.scores
    open_page(served, browser)
    Select(browser.find_element(By.ID, "f-past-due")).select_by_value("true")
    browser.find_element(By.ID, "apply").click()
    past = scores[scores["past_due_days"] > 0]["order_id"].tolist()
    wait_for(lambda: [r["order_id"] for r in rows(browser)] == past, what="past due only")
    assert all(r["badge"] for r in forecasts(browser))

    Select(browser.find_element(By.ID, "f-past-due")).select_by_value("false")
    browser.find_element(By.ID, "f-min-days-late").send_keys("1.5")
    browser.find_element(By.ID, "apply").click()
    keep = (scores["past_due_days"] == 0) & (scores["predicted_days_late"] >= 1.5)
    want = scores[keep]["order_id"].tolist()
    assert 0 < len(want) < len(scores)
    wait_for(lambda: [r["order_id"] for r in rows(browser)] == want, what="the two filters")
    assert not any(r["badge"] for r in forecasts(browser))

    # In Chinese: the badge and the interval too.
    browser.find_element(By.ID, "clear").click()
    wait_for(lambda: len(rows(browser)) == len(scores), what="cleared")
    browser.find_element(By.ID, "lang-zh").click()
    wait_for(lambda: "风险" in browser.find_element(By.ID, "orders").text, what="Chinese")
    first = scores.iloc[0]
    shown = wait_for(lambda: [r for r in forecasts(browser) if r["badge"]], what="zh badges")
    assert shown[0]["badge"] == f"已逾期 {first['past_due_days']:.1f} 天"
    low = day_after_due(first["due_date"], first["days_late_p10"])
    high = day_after_due(first["due_date"], first["days_late_p90"])
    assert shown[0]["interval"] == f"80% 区间：{low} 至 {high}"
    browser.find_element(By.ID, "lang-en").click()


def test_a_run_without_a_forecast_shows_its_signals(served, browser, tmp_path):
    """A run recorded before the forecast (its columns empty): the page still lists it, says
    there is no forecast, draws the model's signals as the bar and labels them so; the past-due
    filter still answers (from the due dates)."""
    import shutil

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from otd_risk.settings import Settings
    from serving.columns import FORECAST_COLUMNS
    from serving.runs import latest_run, record_run

    home = tmp_path / "home"
    shutil.copytree(served.settings.home, home)
    current = latest_run(home_store(home))
    record_run(
        home_store(home),
        served.scores.drop(columns=list(FORECAST_COLUMNS)),
        model_version=current.model_version,
        model_run_id=current.model_run_id,
        as_of=current.as_of,
        data_fingerprint=current.data_fingerprint,
        data_source=current.data_source,
    )
    with Server(Settings(home=home)) as server:
        browser.get(server.url + "/")
        browser.execute_script(f"sessionStorage.setItem('otd-risk.key', '{served.key}')")
        browser.refresh()
        wait_for(lambda: len(rows(browser)) == len(served.scores), what="the ranked rows")
        shown = forecasts(browser)
        assert {r["date"] for r in shown} == {None} and {r["badge"] for r in shown} == {None}
        cells = browser.find_elements(By.CSS_SELECTOR, "tr.order-row td.delivery")
        assert {c.text for c in cells} == {"no forecast"}
        assert browser.find_element(By.ID, "col-bar").text == "Signals (log-odds)"
        assert "no delivery forecast" in browser.find_element(By.ID, "legend").text
        signals = browser.find_elements(By.CSS_SELECTOR, "tr.order-row .bar.signals .seg")
        assert len(signals) > len(served.scores)
        Select(browser.find_element(By.ID, "f-past-due")).select_by_value("true")
        browser.find_element(By.ID, "apply").click()
        scores = served.scores
        past = scores[scores["days_to_due"] < 0]["order_id"].tolist()
        wait_for(lambda: [r["order_id"] for r in rows(browser)] == past, what="past due")
