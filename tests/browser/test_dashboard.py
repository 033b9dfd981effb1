"""The dashboard in headless Chromium (Debian's chromium + chromium-driver) against `ftq up`."""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftq.services.cli.client import FtqClient
from tests.e2e.stack import Stack, start_embedded
from tests.factories import chat_jsonl
from tests.services import require_services

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MODEL = "gpt-4o-mini-2024-07-18"


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver"
    if require_services():
        pytest.fail(f"FTQ_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An embedded server."""
    running = start_embedded(tmp_path_factory.mktemp("dashboard-stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def finished_job(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    """A team key and a succeeded job with train and validation metrics."""
    team = FtqClient(stack.url, "dev-admin-token").create_team("dashboard-team")
    key = team["api_key"]["key"]
    client = FtqClient(stack.url, key)
    data = tmp_path_factory.mktemp("data") / "train.jsonl"
    data.write_bytes(chat_jsonl(50))
    dataset = client.wait_dataset(client.upload_dataset(data)["id"])
    job = client.request(
        "POST",
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": dataset["id"],
            "validation_split": 0.2,
            "eval": {"grader": "contains", "dataset": None},
        },
    )
    final = client.wait_job(job["id"], timeout=240)
    assert final["status"] == "succeeded", stack.logs()
    deadline = time.monotonic() + 120
    while final["eval"]["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        final = client.request("GET", f"/v1/jobs/{job['id']}")
    assert final["eval"]["status"] == "completed", final["eval"]
    return key, final


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium through chromedriver, with a fresh profile."""
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, css: str, timeout: float = 30.0) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_dashboard_lists_the_job_and_renders_its_chart(
    browser: Any, stack: Stack, finished_job: tuple[str, dict[str, Any]], tmp_path: Path
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

    screenshot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    width, height = _png_size(screenshot)
    assert width >= 1000 and height >= 800 and screenshot.stat().st_size > 20_000
    if os.environ.get("FTQ_ARTIFACTS_DIR"):
        target = Path(os.environ["FTQ_ARTIFACTS_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, target / "dashboard.png")

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


def job_steps(stack: Stack, key: str, job_id: str) -> int:
    """How many metric steps the API reports for a job."""
    return len(FtqClient(stack.url, key).request("GET", f"/v1/jobs/{job_id}/metrics")["data"])
