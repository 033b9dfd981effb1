"""The dashboard in headless Chromium (Debian's chromium + chromium-driver) against `ftq up`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ftq.services.cli.client import FtqClient
from tests.browser.conftest import BUDGET_USD, MAX_ACTIVE_JOBS, MODEL, Console, png_size
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

# Every control's accessible name: aria-label, aria-labelledby, a <label>, its text or title.
UNNAMED_CONTROLS = """
const named = (e) => [
  e.getAttribute("aria-label"),
  (e.getAttribute("aria-labelledby") || "").split(" ")
    .map((id) => (document.getElementById(id) || {}).textContent || "").join(""),
  e.labels ? [...e.labels].map((l) => l.textContent).join("") : "",
  e.tagName === "INPUT" ? "" : e.textContent,
  e.getAttribute("title"),
].some((name) => name && name.trim());
return [...document.querySelectorAll("button, input, select, textarea, meter, a[href], [role=tab]")]
  .filter((e) => !named(e)).map((e) => e.outerHTML.slice(0, 160));
"""

# Tables without a caption, header cells without a scope.
UNSTRUCTURED_TABLES = """
return [...document.querySelectorAll("table")].flatMap((t) => [
  ...(t.caption && t.caption.textContent.trim() ? [] : ["no caption: " + t.outerHTML.slice(0, 99)]),
  ...[...t.querySelectorAll("th")].filter((th) => !th.getAttribute("scope"))
    .map((th) => "th without scope: " + th.outerHTML),
]);
"""

# Visible HTML text whose colour is under 4.5:1 against the background it is drawn on (WCAG AA).
LOW_CONTRAST = """
const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
  const p = m[1].split(",").map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
const blend = (top, under) => under.map((v, i) => top[i] * top[3] + v * (1 - top[3]));
const background = (node) => {
  const layers = [];
  for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  return layers.reverse().reduce((under, top) => blend(top, under), [255, 255, 255]);
};
const luminance = (rgb) => { const [r, g, b] = rgb.map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const bad = [];
for (const e of document.body.querySelectorAll("*")) {
  if (e.closest("svg") || !e.getClientRects().length) continue;
  if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const style = getComputedStyle(e);
  if (style.visibility !== "visible") continue;
  const bg = background(e), fg = blend(parse(style.color), bg);
  const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const text = e.textContent.trim().slice(0, 40);
  if (ratio < 4.5) bad.push(`${ratio.toFixed(2)}: ${e.tagName} ${text}`);
}
return bad;
"""


def _wait(driver: Any, css: str, timeout: float = 30.0) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def _until(driver: Any, condition: Any, timeout: float = 30.0) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The dashboard re-renders a table when its data arrives: an element found just before that
    # is stale when read, and the next poll finds the new one.
    stale = (StaleElementReferenceException,)
    return WebDriverWait(driver, timeout, ignored_exceptions=stale).until(condition)


def _open(browser: Any, stack: Stack, key: str, tab: str) -> None:
    """Open the dashboard with the key and switch to a section by its tab."""
    browser.get(f"{stack.url}/#key={key}")
    _wait(browser, "#panel-jobs")
    _wait(browser, f"#tab-{tab}").click()
    _wait(browser, f"#panel-{tab}[data-state='loaded']")


def _usd(value: Any) -> str:
    """Money as the page writes it: cents, or four decimals under a cent."""
    amount = Decimal(str(value))
    return f"${amount:.4f}" if 0 < abs(amount) < Decimal("0.01") else f"${amount:.2f}"


def _screenshot(browser: Any, folder: Path, name: str) -> Path:
    """Save the page as folder/dashboard-NAME.png and check it is a real, full-size picture."""
    path = folder / f"dashboard-{name}.png"
    assert browser.save_screenshot(str(path))
    width, height = png_size(path)
    assert width >= 1000 and height >= 800 and path.stat().st_size > 20_000
    return path


def test_dashboard_lists_the_job_and_renders_its_chart(
    browser: Any, stack: Stack, finished_job: tuple[str, dict[str, Any]], screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    key, job = finished_job
    browser.get(f"{stack.url}/#key={key}")
    row = _wait(browser, f"tr[data-job='{job['id']}']")
    assert "succeeded" in row.text and job["fine_tuned_model"] in row.text
    assert "dashboard-team" in browser.find_element(By.ID, "team").text
    assert key not in browser.current_url  # the fragment is dropped once read

    row.find_element(By.CSS_SELECTOR, "button[data-action='chart']").click()
    _wait(browser, "#chart svg path.train-loss")
    points = {
        p.get_attribute("class").split()[-1]: len(p.get_attribute("d").split())
        for p in browser.find_elements(By.CSS_SELECTOR, "#chart svg path.series")
    }
    assert points["train-loss"] == job_steps(stack, key, job["id"])
    assert points["valid-loss"] >= 2 and points["train-accuracy"] >= 2
    chart = browser.find_element(By.CSS_SELECTOR, "#chart svg")
    assert chart.size["width"] > 500 and chart.size["height"] > 300
    assert browser.find_element(By.ID, "diagnosis").is_displayed()
    _screenshot(browser, screenshots, "jobs")

    row.find_element(By.CSS_SELECTOR, "button[data-action='events']").click()
    events = _wait(browser, "#events")
    assert "The job has successfully completed" in events.text

    row.find_element(By.CSS_SELECTOR, "button[data-action='eval']").click()
    table = _wait(browser, "#eval")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.TAG_NAME, "code").text for r in rows] == [
        MODEL,
        job["fine_tuned_model"],
    ]
    assert "completed" in browser.find_element(By.CSS_SELECTOR, "#detail h3").text
    assert key not in stack.logs()  # the key travelled in headers only, never in a URL


def test_dashboard_asks_for_the_key_and_refuses_a_wrong_one(
    browser: Any, stack: Stack, finished_job: tuple[str, dict[str, Any]]
) -> None:
    from selenium.webdriver.common.by import By

    key, job = finished_job
    browser.get(f"{stack.url}/")
    field = _wait(browser, "#login #key")
    field.send_keys("ftq_sk_wrong")
    browser.find_element(By.CSS_SELECTOR, "#login button[type='submit']").click()
    error = _wait(browser, "#error")
    assert "refused" in error.text
    _wait(browser, "#login #key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#login button[type='submit']").click()
    _wait(browser, f"tr[data-job='{job['id']}']")
    assert browser.execute_script("return sessionStorage.getItem('ftq.key')") == key
    browser.find_element(By.ID, "signout").click()
    _wait(browser, "#login #key")
    assert browser.execute_script("return sessionStorage.getItem('ftq.key')") is None
    assert not browser.find_element(By.ID, "sections").is_displayed()


def test_datasets_section_shows_the_validation_report_with_its_quality_findings(
    browser: Any, stack: Stack, console: Console, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack, console.key, "datasets")
    dataset = console.duplicates
    report = dataset["report"]
    row = _wait(browser, f"tr[data-dataset='{dataset['id']}']")
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[:5] == ["duplicates.jsonl", dataset["id"], "fine-tune", "ready", "22"]
    assert cells[5] == str(report["billing_tokens_per_epoch"])
    assert cells[6] == _usd(report["estimated_cost_usd"])

    row.find_element(By.CSS_SELECTOR, "button[data-action='report']").click()
    detail = _wait(browser, "#dataset-detail")
    assert "Validation report of duplicates.jsonl" in detail.find_element(By.TAG_NAME, "h3").text
    findings = [
        [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        for r in detail.find_elements(By.CSS_SELECTOR, "#findings tbody tr")
    ]
    assert ["warning", "21", "duplicate_example", "this example repeats line 4 exactly"] in findings
    assert ["warning", "22", "duplicate_example", "this example repeats line 6 exactly"] in findings
    quality = detail.find_element(By.CSS_SELECTOR, "#quality tr[data-check='exact_duplicates']")
    assert quality.text == "exact duplicates 2 21 (repeats line 4), 22 (repeats line 6)"
    assert "quality_exact_duplicates" in detail.find_element(By.ID, "quality-findings").text
    total = detail.find_element(By.CSS_SELECTOR, "#token-stats tbody tr").text
    assert total.startswith(f"total tokens 22 {report['tokens']['total']['sum']} ")
    _screenshot(browser, screenshots, "datasets")


def test_usage_section_shows_this_months_spend_budget_and_job_slots(
    browser: Any, stack: Stack, console: Console, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack, console.key, "usage")
    usage = console.client(stack.url).request("GET", "/v1/team")["usage"]
    assert Decimal(usage["estimated_cost_usd"]) > 0  # the job and the sweep's trials count

    def figure(name: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, f"tr[data-usage='{name}'] td").text)

    spent = Decimal(usage["estimated_cost_usd"])
    assert figure("estimated-spend") == _usd(spent)
    assert figure("monthly-budget") == f"${BUDGET_USD}.00"
    assert figure("budget-remaining") == _usd(usage["budget_remaining_usd"])
    assert figure("active-jobs") == f"0 of {MAX_ACTIVE_JOBS} allowed"
    assert figure("jobs-created-this-month") == "3"  # the job and two sweep trials
    assert usage["month"] in browser.find_element(By.ID, "usage").text
    meter = browser.find_element(By.ID, "budget-meter")
    assert float(meter.get_attribute("value")) == pytest.approx(float(spent))
    _screenshot(browser, screenshots, "usage")


def test_webhooks_section_lists_deliveries_and_replays_one(
    browser: Any, stack: Stack, console: Console, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack, console.key, "webhooks")
    endpoint = _wait(browser, f"tr[data-endpoint='{console.endpoint['id']}']")
    assert console.receiver.url in endpoint.text and "enabled" in endpoint.text
    assert "all events" in endpoint.text

    client = console.client(stack.url)
    delivery = next(
        d
        for d in client.list_all("/v1/webhook-deliveries")
        if d["job_id"] == console.job["id"] and d["event_type"] == "job.succeeded"
    )
    row = _wait(browser, f"tr[data-delivery='{delivery['id']}']")
    attempts = delivery["attempts"]
    assert row.find_element(By.CSS_SELECTOR, ".attempts").text == str(attempts)
    assert "succeeded" in row.find_element(By.CSS_SELECTOR, ".delivery-status").text
    assert f"#{attempts}: HTTP 200" in row.text
    arrived = _arrivals(console, delivery["event_id"])

    row.find_element(By.CSS_SELECTOR, "button[data-action='replay']").click()
    _until(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, f"tr[data-delivery='{delivery['id']}'] .attempts").text
            == str(attempts + 1)
        ),
    )
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-delivery='{delivery['id']}']")
    assert f"#{attempts + 1}: HTTP 200" in row.text
    assert "Replayed" in browser.find_element(By.ID, "live").text
    _screenshot(browser, screenshots, "webhooks")
    assert _arrivals(console, delivery["event_id"]) == arrived + 1  # the same webhook-id sent again


def _arrivals(console: Console, webhook_id: str) -> int:
    with console.receiver.lock:
        return sum(1 for r in console.receiver.received if r.headers["webhook-id"] == webhook_id)


def test_evals_section_shows_models_side_by_side_with_intervals(
    browser: Any, stack: Stack, console: Console, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack, console.key, "evals")
    ev = console.client(stack.url).request("GET", f"/v1/evals/{console.job['eval']['id']}")
    table = _wait(browser, f"table.eval-table[data-eval='{ev['id']}']")
    assert "completed" in table.find_element(By.TAG_NAME, "caption").text
    assert console.job["id"] in table.find_element(By.TAG_NAME, "caption").text
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.get_attribute("data-model") for r in rows] == [MODEL, console.job["fine_tuned_model"]]
    for row, result in zip(rows, ev["results"], strict=True):
        assert row.find_element(By.CSS_SELECTOR, ".score").text == f"{result['score']:.3f}"
        low, high = result["interval"]
        assert row.find_element(By.CSS_SELECTOR, ".interval").text == f"[{low:.3f}, {high:.3f}]"
    assert "baseline" in rows[0].text and "of " in rows[1].text
    schedule = console.schedule
    row = _wait(browser, f"table.schedule-table tr[data-schedule='{schedule['id']}']")
    assert "* * * * *" in row.text and "active" in row.text
    last = row.find_element(By.CSS_SELECTOR, ".last-score").text
    assert last.startswith(f"{schedule['last_run']['score']:.3f}") and "completed" in last
    _screenshot(browser, screenshots, "evals")


def test_sweeps_section_shows_each_trial_and_the_winner(
    browser: Any, stack: Stack, console: Console, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, stack, console.key, "sweeps")
    sweep = console.sweep
    table = _wait(browser, f"table.sweep-table[data-sweep='{sweep['id']}']")
    assert "completed" in table.find_element(By.TAG_NAME, "caption").text
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    shown = {r.get_attribute("data-job"): r.text for r in rows}
    assert set(shown) == {t["job_id"] for t in sweep["trials"]}
    for trial in sweep["trials"]:
        assert f"n_epochs={trial['hyperparameters']['n_epochs']}" in shown[trial["job_id"]]
    assert "★ best" in shown[sweep["best_job_id"]]
    _screenshot(browser, screenshots, "sweeps")


def test_keyboard_reaches_the_tabs_and_every_control_is_named_and_legible(
    browser: Any, stack: Stack, console: Console
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{stack.url}/#key={console.key}")
    _wait(browser, f"tr[data-job='{console.job['id']}']")

    def press(key: str) -> Any:
        ActionChains(browser).send_keys(key).perform()
        return browser.switch_to.active_element

    focused = [press(Keys.TAB).text for _ in range(4)]
    assert focused == ["Skip to content", "Refresh", "Sign out", "Jobs"]
    tab = browser.switch_to.active_element
    assert tab.get_attribute("role") == "tab" and tab.get_attribute("aria-selected") == "true"
    assert (
        browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        == "solid"
    )  # the focus is visible
    assert press(Keys.ARROW_RIGHT).text == "Datasets"
    _wait(browser, "#panel-datasets[data-state='loaded']")
    report = press(Keys.TAB)  # from the tab list into the panel: the first dataset's report
    assert report.get_attribute("data-action") == "report"
    heading = press(Keys.ENTER)
    assert heading.tag_name == "h3" and heading.text.startswith("Validation report of")
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    back = browser.switch_to.active_element  # back into the table, not lost on the page
    assert back.get_attribute("data-action") == "report", back.get_attribute("outerHTML")

    problems: list[str] = []
    for name in ("jobs", "datasets", "usage", "webhooks", "evals", "sweeps"):
        browser.find_element("id", f"tab-{name}").click()
        _wait(browser, f"#panel-{name}[data-state='loaded']")
        problems += browser.execute_script(LOW_CONTRAST)
    browser.find_element("id", "tab-jobs").click()
    _wait(browser, "#panel-jobs[data-state='loaded']")
    _wait(browser, f"tr[data-job='{console.job['id']}'] button[data-action='chart']").click()
    _wait(browser, "#chart svg")
    problems += browser.execute_script(LOW_CONTRAST)
    assert problems == []
    assert browser.execute_script(UNNAMED_CONTROLS) == []
    assert browser.execute_script(UNSTRUCTURED_TABLES) == []


def job_steps(stack: Stack, key: str, job_id: str) -> int:
    """How many metric steps the API reports for a job."""
    return len(FtqClient(stack.url, key).request("GET", f"/v1/jobs/{job_id}/metrics")["data"])
