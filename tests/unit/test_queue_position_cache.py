"""Reading a queued job reuses the queue's fair order for a moment instead of recomputing it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import repository, scheduling
from ftq.shared.settings import reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def cached(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A 30 s cache, a clock the test moves, and a count of full-queue computations."""
    monkeypatch.setenv("FTQ_QUEUE_POSITION_CACHE_SECONDS", "30")
    reset_settings()
    scheduling._CACHED_ORDERS.clear()
    computed: list[int] = []
    real = repository.queue_of

    def counting(*args: Any, **kwargs: Any) -> Any:
        computed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(repository, "queue_of", counting)
    yield computed
    scheduling._CACHED_ORDERS.clear()
    monkeypatch.delenv("FTQ_QUEUE_POSITION_CACHE_SECONDS")
    reset_settings()


def _job(client: TestClient, session: Session, team: dict[str, Any]) -> str:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body = {"model": MODEL, "training_dataset": dataset["id"]}
    return str(client.post("/v1/jobs", json=body, headers=auth(team)).json()["id"])


def test_reads_reuse_the_order_and_new_jobs_get_an_exact_place(
    client: TestClient, session: Session, cached: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    team_a, team_b = create_team(client, "cache-a"), create_team(client, "cache-b")
    first = _job(client, session, team_a)
    before = len(cached)
    for _ in range(20):
        shown = client.get(f"/v1/jobs/{first}", headers=auth(team_a)).json()
        assert shown["queue_position"] == 1
    assert len(cached) == before, "20 reads, no recomputation of the queue"
    second = _job(client, session, team_b)
    assert client.get(f"/v1/jobs/{second}", headers=auth(team_b)).json()["queue_position"] == 2
    clock = scheduling.time.monotonic() + 31
    monkeypatch.setattr(scheduling.time, "monotonic", lambda: clock)
    computed = len(cached)
    client.get(f"/v1/jobs/{first}", headers=auth(team_a))
    assert len(cached) == computed + 1, "an expired order is computed again"
