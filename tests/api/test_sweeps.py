"""Sweeps over HTTP: trials as jobs, limits, budget, tenancy."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.services.api import uow
from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import scheduling
from ftq.shared.models import Job, JobMetric
from ftq.shared.settings import reset_settings
from ftq.shared.sweeps import service
from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


def _ready_dataset(client: TestClient, session: Session, team: dict[str, Any]) -> dict[str, Any]:
    dataset = upload(client, team, chat_jsonl(12), model=MODEL).json()
    datasets.run_validation(session, dataset["id"])
    return dict(client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).json())


def _sweep(
    client: TestClient, team: dict[str, Any], dataset_id: str, search: dict[str, Any], **base: Any
) -> Any:
    body = {
        "base": {"model": MODEL, "training_dataset": dataset_id, **base},
        "search": search,
        "eval": {"grader": "exact", "dataset": dataset_id},
    }
    return client.post("/v1/sweeps", json=body, headers=auth(team))


def _jobs(client: TestClient, team: dict[str, Any]) -> list[dict[str, Any]]:
    return list(client.get("/v1/jobs?limit=100", headers=auth(team)).json()["data"])


def test_grid_sweep_queues_one_job_per_combination(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    space = {"n_epochs": [1, 2], "learning_rate_multiplier": [0.5, 2.0]}
    response = _sweep(client, team, dataset["id"], {"type": "grid", "space": space})
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert (sweep["object"], sweep["status"], sweep["best_job_id"]) == ("sweep", "running", None)
    combos = [tuple(t["hyperparameters"].values()) for t in sweep["trials"]]
    assert sorted(combos) == [(0.5, 1), (0.5, 2), (2.0, 1), (2.0, 2)]
    jobs = {job["id"]: job for job in _jobs(client, team)}
    assert set(jobs) == {t["job_id"] for t in sweep["trials"]}
    for trial in sweep["trials"]:
        job = jobs[trial["job_id"]]
        assert job["status"] == "queued"
        assert job["method"]["hyperparameters"]["n_epochs"] == trial["hyperparameters"]["n_epochs"]
        assert job["eval"]["grader"] == "exact"
        assert trial["cost_usd"] is not None and not trial["stopped_early"]
    read = client.get(f"/v1/sweeps/{sweep['id']}", headers=auth(team)).json()
    assert read["trials"] == sweep["trials"]
    listed = client.get("/v1/sweeps", headers=auth(team)).json()
    assert [s["id"] for s in listed["data"]] == [sweep["id"]]
    chart = client.get(f"/v1/sweeps/{sweep['id']}/chart.svg", headers=auth(team))
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.count("<rect") == 4


def test_random_sweep_is_reproducible_with_its_seed(client: TestClient, session: Session) -> None:
    team = create_team(client, max_active_jobs=50)
    dataset = _ready_dataset(client, session, team)
    space = {"n_epochs": [1, 2, 3, 4], "batch_size": [1, 2, 4, 8]}

    def sample(seed: int) -> list[dict[str, Any]]:
        search = {"type": "random", "n_trials": 3, "seed": seed, "space": space}
        response = _sweep(client, team, dataset["id"], search)
        assert response.status_code == 201, response.text
        return [t["hyperparameters"] for t in response.json()["trials"]]

    first, again, other = sample(7), sample(7), sample(8)
    assert first == again
    assert len({tuple(h.values()) for h in first}) == 3
    assert other != first


def test_more_than_twelve_trials_is_refused_naming_search(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    space = {"n_epochs": [1, 2, 3, 4, 5], "batch_size": [1, 2, 4]}
    response = _sweep(client, team, dataset["id"], {"type": "grid", "space": space})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "search"
    assert "15 trials" in response.json()["error"]["message"]
    assert _jobs(client, team) == []


def test_lora_rank_is_refused_on_an_openai_style_provider(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    search = {"type": "grid", "space": {"lora_rank": [8, 16]}}
    response = _sweep(client, team, dataset["id"], search)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "search.space.lora_rank"
    assert _jobs(client, team) == []


def test_sweep_over_budget_is_refused_with_nothing_created(
    client: TestClient, session: Session
) -> None:
    team = create_team(client, "thrifty", monthly_budget_usd="0.03")
    dataset = _ready_dataset(client, session, team)
    cost = float(dataset["report"]["estimated_cost_usd"])
    assert 0.01 < cost <= 0.02, cost
    search = {"type": "grid", "space": {"batch_size": [1, 2, 4]}}
    response = _sweep(client, team, dataset["id"], search)
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert f"3 trials cost ${3 * cost:.2f} in all" in error["message"]
    assert _jobs(client, team) == []
    assert client.get("/v1/sweeps", headers=auth(team)).json()["data"] == []
    # One trial fits: the same sweep over a single value is accepted.
    single = _sweep(client, team, dataset["id"], {"type": "grid", "space": {"batch_size": [1]}})
    assert single.status_code == 201, single.text


def test_other_teams_sweep_is_not_found(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    sweep = _sweep(client, team, dataset["id"], {"space": {"n_epochs": [1]}}).json()
    other = create_team(client, "team-b")
    for path in ("", "/chart.svg"):
        response = client.get(f"/v1/sweeps/{sweep['id']}{path}", headers=auth(other))
        assert response.status_code == 404, response.text
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=auth(other)).status_code == 404
    assert client.get("/v1/sweeps", headers=auth(other)).json()["data"] == []


def test_cancel_stops_every_unfinished_trial(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    sweep = _sweep(client, team, dataset["id"], {"space": {"n_epochs": [1, 2]}}).json()
    response = client.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=auth(team))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert {t["status"] for t in response.json()["trials"]} == {"cancelled"}
    again = client.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=auth(team))
    assert again.status_code == 409


def _running(session: Session, job_ids: list[str]) -> list[Job]:
    jobs = [session.get(Job, job_id) for job_id in job_ids]
    for job in jobs:
        assert job is not None
        job.status, job.provider_job_id = "running", f"ftjob-{job.id}"
    session.flush()
    return [job for job in jobs if job is not None]


def _losses(session: Session, job: Job, values: list[float]) -> None:
    for step, loss in enumerate(values, start=1):
        session.add(JobMetric(job_id=job.id, step=step * 10, train_loss=loss, valid_loss=loss))
    session.flush()


def test_clearly_worse_trial_is_stopped_early_and_cancelled_at_the_provider(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    sweep = _sweep(client, team, dataset["id"], {"space": {"n_epochs": [1, 2, 3]}}).json()
    healthy, diverging, slow = _running(session, [t["job_id"] for t in sweep["trials"]])
    _losses(session, healthy, [1.0, 0.8, 0.6])
    _losses(session, diverging, [1.0, 1.4, 2.5])
    _losses(session, slow, [1.0, 0.9])  # worse but too few evaluations to judge
    assert service.advance(session, sweep["id"]) is False
    uow.send_own()
    read = client.get(f"/v1/sweeps/{sweep['id']}", headers=auth(team)).json()
    by_job = {t["job_id"]: t for t in read["trials"]}
    assert (by_job[diverging.id]["status"], by_job[diverging.id]["stopped_early"]) == (
        "cancelled",
        True,
    )
    for job in (healthy, slow):
        assert (by_job[job.id]["status"], by_job[job.id]["stopped_early"]) == ("running", False)
    assert ("jobs.cancel_at_provider", [diverging.id]) in sent_tasks
    assert read["status"] == "running"


def test_settled_sweep_picks_the_best_score_once(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    sweep = _sweep(client, team, dataset["id"], {"space": {"n_epochs": [1, 2, 3]}}).json()
    ids = [t["job_id"] for t in sweep["trials"]]
    scores = dict(zip(ids, [0.5, 0.75, 0.75], strict=True))
    monkeypatch.setattr(service, "_score", lambda _session, job: scores[job.id])
    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(
        service.webhooks, "emit", lambda _s, _t, kind, data: emitted.append({kind: data})
    )
    for job in _running(session, ids):
        job.status = "succeeded"
    session.flush()
    assert service.advance(session, sweep["id"]) is True
    assert service.advance(session, sweep["id"]) is False
    read = client.get(f"/v1/sweeps/{sweep['id']}", headers=auth(team)).json()
    # A tie on the score goes to the cheaper trial: fewer epochs.
    assert read["status"] == "completed" and read["best_job_id"] == ids[1]
    assert len(emitted) == 1
    assert emitted[0]["sweep.completed"]["winner"]["job_id"] == ids[1]
    assert [t["score"] for t in emitted[0]["sweep.completed"]["trials"]] == [0.5, 0.75, 0.75]


def test_twelve_trial_sweep_does_not_delay_another_teams_job(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTQ_PROVIDER_CAPACITY", '{"emulator": 2}')
    reset_settings()
    try:
        big = create_team(client, "sweeper", max_active_jobs=20)
        dataset = _ready_dataset(client, session, big)
        space = {"n_epochs": [1, 2, 3, 4], "batch_size": [1, 2, 4]}
        sweep = _sweep(client, big, dataset["id"], {"space": space}).json()
        assert len(sweep["trials"]) == 12
        small = create_team(client, "single")
        other = _ready_dataset(client, session, small)
        body = {"model": MODEL, "training_dataset": other["id"]}
        job = client.post("/v1/jobs", json=body, headers=auth(small)).json()
        assert job["queue_position"] == 2  # behind one trial, not behind twelve
        admitted = scheduling.schedule(session, "emulator", MODEL)
        assert job["id"] in [j.id for j in admitted]
        assert sum(j.sweep_id == sweep["id"] for j in admitted) == 1
    finally:
        monkeypatch.undo()
        reset_settings()
