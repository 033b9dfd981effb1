"""Fixtures of the browser tests: an embedded stack, a team's console data, headless Chromium."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ftq.services.cli.client import FtqClient
from ftq.services.cli.receiver import WebhookReceiver
from tests.e2e.stack import Stack, start_embedded
from tests.factories import chat_jsonl
from tests.services import require_services

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MODEL = "gpt-4o-mini-2024-07-18"
BUDGET_USD = 25
MAX_ACTIVE_JOBS = 5
SUCCEEDED = "job.succeeded"


@dataclass
class Console:
    """What the fixtures made for one team: the data each dashboard section must show."""

    key: str
    team: dict[str, Any]
    job: dict[str, Any]
    duplicates: dict[str, Any]
    endpoint: dict[str, Any]
    sweep: dict[str, Any]
    receiver: WebhookReceiver
    schedule: dict[str, Any]

    def client(self, url: str) -> FtqClient:
        """An API client with the team key."""
        return FtqClient(url, self.key)


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
def receiver() -> Iterator[WebhookReceiver]:
    """A local webhook receiver answering 200."""
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


def _duplicates_file(folder: Path) -> Path:
    """20 examples, then lines 4 and 6 again: two exact duplicates the quality pass reports."""
    lines = chat_jsonl(20).splitlines(keepends=True)
    path = folder / "duplicates.jsonl"
    path.write_bytes(b"".join(lines) + lines[3] + lines[5])
    return path


@pytest.fixture(scope="module")
def console(
    stack: Stack, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Console:
    """A team with a budget, a webhook endpoint, two datasets, a finished job with its eval and a
    completed sweep, every webhook delivered."""
    team = FtqClient(stack.url, "dev-admin-token").create_team(
        "dashboard-team", monthly_budget_usd=BUDGET_USD, max_active_jobs=MAX_ACTIVE_JOBS
    )
    key = team["api_key"]["key"]
    client = FtqClient(stack.url, key)
    endpoint = client.request(
        "POST",
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "description": "dashboard test receiver"},
    )
    folder = tmp_path_factory.mktemp("data")
    duplicates = client.wait_dataset(
        client.upload_dataset(_duplicates_file(folder), model=MODEL)["id"]
    )
    data = folder / "train.jsonl"
    data.write_bytes(chat_jsonl(50))
    dataset = client.wait_dataset(client.upload_dataset(data, model=MODEL)["id"])
    base = {"model": MODEL, "training_dataset": dataset["id"], "validation_split": 0.2}
    job = client.request(
        "POST", "/v1/jobs", json={**base, "eval": {"grader": "contains", "dataset": None}}
    )
    sweep = client.request(
        "POST",
        "/v1/sweeps",
        json={
            "base": base,
            "search": {"type": "grid", "space": {"n_epochs": [1, 2]}},
            "eval": {"grader": "contains"},
        },
    )
    # Every minute: by the time the job, its eval and the sweep are done, a slot has run.
    schedule = client.request(
        "POST",
        "/v1/eval-schedules",
        json={"model": MODEL, "dataset": dataset["id"], "grader": "contains", "cron": "* * * * *"},
    )
    final = client.wait_job(job["id"], timeout=240)
    assert final["status"] == "succeeded", stack.logs()
    final = client.wait(
        f"/v1/jobs/{job['id']}", lambda j: j["eval"]["status"] in ("completed", "failed"), 120
    )
    assert final["eval"]["status"] == "completed", final["eval"]
    sweep = client.wait(f"/v1/sweeps/{sweep['id']}", lambda s: s["status"] != "running", 240)
    assert sweep["status"] == "completed", sweep
    _wait_delivered(client, final["id"])
    schedule = client.wait(
        f"/v1/eval-schedules/{schedule['id']}",
        lambda s: (s["last_run"] or {}).get("status") == "completed",
        180,
    )
    return Console(key, team, final, duplicates, endpoint, sweep, receiver, schedule)


def _wait_delivered(client: FtqClient, job_id: str, timeout: float = 60.0) -> None:
    """Until no delivery is pending and the job's `job.succeeded` has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = client.list_all("/v1/webhook-deliveries")
        done = [d for d in deliveries if (d["job_id"], d["event_type"]) == (job_id, SUCCEEDED)]
        if done and all(d["status"] != "pending" for d in deliveries):
            return
        time.sleep(0.3)
    raise AssertionError(f"deliveries still pending: {deliveries}")


@pytest.fixture(scope="module")
def finished_job(console: Console) -> tuple[str, dict[str, Any]]:
    """A team key and a succeeded job with train and validation metrics."""
    return console.key, console.job


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


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where section screenshots go: FTQ_SCREENSHOT_DIR (CI keeps it as artifacts) or tmp_path."""
    folder = Path(os.environ.get("FTQ_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG header (and that it is one)."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height
