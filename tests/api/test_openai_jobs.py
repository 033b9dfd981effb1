"""`client.fine_tuning.jobs` of the real openai SDK against ftq, strict response validation on."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import lifecycle, repository
from ftq.shared.models import Job, JobCheckpoint, JobEvent
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.openai_kit import sdk

MODEL = "gpt-4o-mini-2024-07-18"


def _file(client: TestClient, session: Session, team: dict[str, Any], **kwargs: Any) -> str:
    """A dataset uploaded and validated; its `file-` id."""
    dataset = upload(client, team, kwargs.pop("content", None) or chat_jsonl(12)).json()
    if kwargs.pop("validate", True):
        datasets.run_validation(session, dataset["id"])
    return "file-" + dataset["id"].removeprefix("ds_")


def _team(client: TestClient, name: str = "compat") -> tuple[dict[str, Any], openai.OpenAI]:
    team = create_team(client, name)
    return team, sdk(client, team["api_key"]["key"])


def test_a_job_created_through_the_sdk_is_an_ftq_job(client: TestClient, session: Session) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    job = api.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training,
        hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
        suffix="units",
        seed=7,
        metadata={"team": "search"},
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job"
    assert job.status == "queued" and job.error is None and job.seed == 7
    assert job.hyperparameters.n_epochs == 2 and job.training_file == training
    assert job.method is not None and job.method.type == "supervised"
    native = client.get(f"/v1/jobs/ftj_{job.id.removeprefix('ftjob-')}", headers=auth(team))
    assert native.status_code == 200, "the same job, under its ftq id"
    assert native.json()["method"]["hyperparameters"]["n_epochs"] == 2
    assert native.json()["suffix"] == "units" and native.json()["metadata"] == {"team": "search"}
    assert api.fine_tuning.jobs.retrieve(job.id).id == job.id


def test_a_job_waits_in_validating_files_until_its_file_is_validated(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    training = _file(client, session, team, validate=False)
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=training)
    assert job.status == "validating_files"
    datasets.run_validation(session, "ds_" + training.removeprefix("file-"))
    assert api.fine_tuning.jobs.retrieve(job.id).status == "queued"


def test_a_file_that_failed_validation_is_a_400_naming_its_findings(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": []}\n' + chat_jsonl(10)
    training = _file(client, session, team, content=bad)
    with pytest.raises(openai.BadRequestError) as caught:
        api.fine_tuning.jobs.create(model=MODEL, training_file=training)
    error = caught.value
    assert error.status_code == 400 and error.code == "invalid_training_file"
    assert error.param == "training_file"
    assert "line 1" in error.message and "line 2" in error.message
    assert f"GET /v1/datasets/ds_{training.removeprefix('file-')}" in error.message
    assert api.fine_tuning.jobs.list().data == [], "nothing was created"


def test_unknown_fields_and_bad_values_are_openai_400s(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    with pytest.raises(openai.BadRequestError) as unknown:
        api.fine_tuning.jobs.create(model=MODEL, training_file=training, extra_body={"colour": 1})
    assert "Unrecognized request argument supplied: colour" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as epochs:
        api.fine_tuning.jobs.create(
            model=MODEL, training_file=training, hyperparameters={"n_epochs": 99}
        )
    assert "n_epochs" in (epochs.value.param or "") + epochs.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        api.fine_tuning.jobs.create(model=MODEL, training_file="file-nope")
    assert missing.value.param == "training_file"
    assert "No such File object: file-nope" in missing.value.message


def test_top_level_and_method_hyperparameters_merge_and_must_agree(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    job = api.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training,
        hyperparameters={"n_epochs": 3},
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8}}},
    )
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (3, 8)
    with pytest.raises(openai.BadRequestError) as clash:
        api.fine_tuning.jobs.create(
            model=MODEL,
            training_file=training,
            hyperparameters={"n_epochs": 3},
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 4}}},
        )
    assert clash.value.param == "hyperparameters.n_epochs"


def test_the_native_api_takes_the_legacy_top_level_hyperparameters(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = "ds_" + _file(client, session, team).removeprefix("file-")
    body = {"model": MODEL, "training_dataset": dataset, "hyperparameters": {"n_epochs": 5}}
    created = client.post("/v1/jobs", json=body, headers=auth(team))
    assert created.status_code == 201, created.text
    assert created.json()["method"]["hyperparameters"]["n_epochs"] == 5


def test_the_provider_is_chosen_by_model_prefix_or_metadata(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    prefixed = api.fine_tuning.jobs.create(model=f"emulator:{MODEL}", training_file=training)
    assert prefixed.model == MODEL and prefixed.model_extra["provider"] == "emulator"
    by_metadata = api.fine_tuning.jobs.create(
        model=MODEL, training_file=training, metadata={"ftq_provider": "emulator"}
    )
    assert by_metadata.model_extra["provider"] == "emulator"
    with pytest.raises(openai.BadRequestError) as unknown:
        api.fine_tuning.jobs.create(
            model=MODEL, training_file=training, metadata={"ftq_provider": "mars"}
        )
    assert unknown.value.param == "metadata.ftq_provider"
    assert "emulator" in unknown.value.message and "local" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as unconfigured:
        api.fine_tuning.jobs.create(model=f"openai:{MODEL}", training_file=training)
    assert unconfigured.value.code == "provider_not_configured"


def test_list_is_newest_first_pages_with_after_and_filters_metadata(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    made = [
        api.fine_tuning.jobs.create(
            model=MODEL, training_file=training, metadata={"n": str(i % 2)}
        ).id
        for i in range(3)
    ]
    first = api.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == made[::-1][:2] and first.has_more
    rest = api.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in rest.data] == [made[0]] and not rest.has_more
    everything = [j.id for j in api.fine_tuning.jobs.list(limit=1)]  # the SDK follows pages
    assert everything == made[::-1]
    odd = api.fine_tuning.jobs.list(metadata={"n": "1"})
    assert [j.id for j in odd.data] == [made[1]]


def _job(session: Session, job_id: str) -> Job:
    row = session.get(Job, "ftj_" + job_id.removeprefix("ftjob-"))
    assert row is not None
    return row


def test_events_are_newest_first_with_openai_metric_data(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=_file(client, session, team))
    row = _job(session, job.id)
    for step in (1, 2):
        data = {"step": step, "train_loss": 1.0 / step, "total_steps": 2}
        repository.add(
            session,
            JobEvent(
                job_id=row.id,
                source="provider",
                provider_event_id=f"ev-{step}",
                level="info",
                type="metrics",
                message=f"Step {step}/2",
                data=data,
            ),
        )
    events = api.fine_tuning.jobs.list_events(job.id, limit=2)
    assert [e.message for e in events.data] == ["Step 2/2", "Step 1/2"]
    metric = events.data[0]
    assert metric.type == "metrics" and metric.object == "fine_tuning.job.event"
    assert metric.data is not None
    assert {"step", "train_loss", "valid_loss", "total_steps", "train_mean_token_accuracy"} <= set(
        metric.data
    )
    older = api.fine_tuning.jobs.list_events(job.id, after=events.data[-1].id)
    assert older.data and older.data[-1].message.startswith("Job created")


def test_checkpoints_cancel_and_failures_read_as_openai(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=_file(client, session, team))
    row = _job(session, job.id)
    for step in (10, 20):
        repository.add(
            session,
            JobCheckpoint(
                job_id=row.id,
                provider_checkpoint_id=f"ckpt-{step}",
                step_number=step,
                fine_tuned_model_checkpoint=f"ft:{MODEL}:ckpt-step-{step}",
                metrics={"train_loss": 0.5},
            ),
        )
    checkpoints = api.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in checkpoints.data] == [20, 10]
    assert checkpoints.data[0].fine_tuning_job_id == job.id
    assert checkpoints.data[0].metrics.train_loss == 0.5
    cancelled = api.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.error is None
    failed = api.fine_tuning.jobs.create(model=MODEL, training_file=_file(client, session, team))
    lifecycle.fail(session, _job(session, failed.id), "provider_failed", "out of memory")
    shown = api.fine_tuning.jobs.retrieve(failed.id)
    assert shown.status == "failed" and shown.error is not None
    assert (shown.error.code, shown.error.message) == ("provider_failed", "out of memory")


def test_another_teams_job_is_openais_404(client: TestClient, session: Session) -> None:
    team, api = _team(client, "owner")
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=_file(client, session, team))
    _, stranger = _team(client, "stranger")
    for call in (
        lambda: stranger.fine_tuning.jobs.retrieve(job.id),
        lambda: stranger.fine_tuning.jobs.cancel(job.id),
        lambda: stranger.fine_tuning.jobs.list_events(job.id),
        lambda: stranger.fine_tuning.jobs.checkpoints.list(job.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "fine_tune_not_found"
        assert f"Could not find fine tune: {job.id}" in caught.value.message
    assert stranger.fine_tuning.jobs.list().data == []


def test_an_idempotency_key_replays_the_first_create(client: TestClient, session: Session) -> None:
    team, api = _team(client)
    training = _file(client, session, team)
    headers = {"Idempotency-Key": "compat-create-1"}
    first = api.fine_tuning.jobs.create(model=MODEL, training_file=training, extra_headers=headers)
    again = api.fine_tuning.jobs.create(model=MODEL, training_file=training, extra_headers=headers)
    assert again.id == first.id
    assert [j.id for j in api.fine_tuning.jobs.list()] == [first.id]
