"""`client.models` of the real openai SDK against ftq, strict response validation on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared import catalog
from ftq.shared.jobs import repository
from ftq.shared.models import Job, JobCheckpoint, JobEvent, Team
from ftq.shared.providers.base import JobSpec
from ftq.shared.settings import reset_settings
from ftq.shared.timeutil import utcnow
from tests.factories import chat_jsonl, create_team, job_row
from tests.openai_kit import sdk
from tests.unit.test_providers_kit import Emulator
from tests.unit.test_providers_kit import emulator as emulator
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

MODEL = "gpt-4o-mini-2024-07-18"
OPENAI_KEY = "sk-test-never-shown-0123456789"
LOCAL_PATH = "/models/tiny-llama-folder"


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings read afresh from the environment the test sets, and again after it."""
    monkeypatch.setenv("FTQ_LOCAL_ENABLED", "false")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FTQ_OPENAI_API_KEY", raising=False)
    reset_settings()
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def _team(client: TestClient, session: Session, name: str) -> tuple[Team, openai.OpenAI]:
    created = create_team(client, name)
    team = session.get(Team, created["id"])
    assert team is not None
    return team, sdk(client, created["api_key"]["key"])


def _tuned(session: Session, team: Team, name: str, **fields: Any) -> Job:
    """A succeeded job that made `name`."""
    fields = {"status": "succeeded", "fine_tuned_model": name, "finished_at": utcnow(), **fields}
    job: Job = job_row(session, team, **fields)
    return job


def _checkpoint(session: Session, job: Job, step: int) -> str:
    name = f"{job.fine_tuned_model}:ckpt-step-{step}"
    repository.add(
        session,
        JobCheckpoint(
            job_id=job.id,
            provider_checkpoint_id=f"ckpt-{step}",
            step_number=step,
            fine_tuned_model_checkpoint=name,
            metrics={},
            provider_created_at=1_700_000_000 + step,
        ),
    )
    return name


def test_the_default_providers_base_models_are_listed_plain(
    client: TestClient, session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    _, api = _team(client, session, "models")
    listed = {m.id: m for m in api.models.list()}
    assert set(listed) == {info.name for info in catalog.MODELS}, "emulator only: plain names"
    mini = listed[MODEL]
    assert (mini.object, mini.owned_by, mini.model_extra["provider"]) == (
        "model",
        "emulator",
        "emulator",
    )
    assert mini.created == 1_721_260_800, "the snapshot's date"
    assert api.models.retrieve(MODEL).id == MODEL


def test_every_configured_provider_is_listed_with_its_prefix(
    client: TestClient, session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("OPENAI_API_KEY", OPENAI_KEY)
    settings_env.setenv("FTQ_LOCAL_ENABLED", "true")
    settings_env.setenv("FTQ_LOCAL_MODELS", f'{{"tiny": "{LOCAL_PATH}"}}')
    reset_settings()
    _, api = _team(client, session, "models")
    raw = api.models.with_raw_response.list()
    listed = {m.id: m for m in raw.parse()}
    assert OPENAI_KEY not in raw.text and LOCAL_PATH not in raw.text
    assert listed[MODEL].owned_by == "emulator", "the plain name is the default provider's"
    assert listed[f"openai:{MODEL}"].owned_by == "openai"
    assert listed[f"emulator:{MODEL}"].owned_by == "emulator"
    assert listed[f"openai:{MODEL}"].shutdown_date == catalog.SHUTDOWN_2027.isoformat()
    assert listed[f"emulator:{MODEL}"].shutdown_date is None
    assert listed["local:tiny"].owned_by == "local"
    assert api.models.retrieve("local:tiny").model_extra["provider"] == "local"
    assert api.models.retrieve(f"openai:{MODEL}").id == f"openai:{MODEL}"


def test_the_teams_tuned_models_and_checkpoints_are_listed_but_not_another_teams(
    client: TestClient, session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    team, api = _team(client, session, "owner")
    job = _tuned(session, team, f"ft:{MODEL}:emulator:units:abc12345")
    checkpoint = _checkpoint(session, job, 10)
    repository.add(
        session,
        JobCheckpoint(
            job_id=job.id,
            provider_checkpoint_id="ckpt-final",
            step_number=20,
            fine_tuned_model_checkpoint=job.fine_tuned_model,
            metrics={},
        ),
    )
    unfinished = job_row(session, team, status="running")
    early = f"ft:{MODEL}:emulator:run:zz:ckpt-step-5"
    repository.add(
        session,
        JobCheckpoint(
            job_id=unfinished.id,
            provider_checkpoint_id="c5",
            step_number=5,
            fine_tuned_model_checkpoint=early,
            metrics={},
        ),
    )
    stranger_team, stranger = _team(client, session, "stranger")
    foreign = _tuned(session, stranger_team, f"ft:{MODEL}:emulator:theirs:def67890")
    tuned = [m for m in api.models.list() if m.owned_by == team.id]
    assert {m.id for m in tuned} == {job.fine_tuned_model, checkpoint, early}
    assert len(tuned) == 3, "the final checkpoint is the job's model, listed once"
    shown = api.models.retrieve(job.fine_tuned_model or "")
    assert shown.owned_by == team.id and shown.model_extra["provider"] == "emulator"
    assert shown.model_extra["fine_tuning_job"] == "ftjob-" + job.id.removeprefix("ftj_")
    assert api.models.retrieve(checkpoint).created == 1_700_000_010
    assert foreign.fine_tuned_model not in {m.id for m in api.models.list()}
    for call in (
        lambda: api.models.retrieve(foreign.fine_tuned_model or ""),
        lambda: api.models.delete(foreign.fine_tuned_model or ""),
        lambda: stranger.models.retrieve(checkpoint),
        lambda: api.models.retrieve("gpt-5-turbo-nope"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "model_not_found" and caught.value.param == "model"
        assert "does not exist" in caught.value.message


def test_a_base_model_cannot_be_deleted(
    client: TestClient, session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    _, api = _team(client, session, "models")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        api.models.delete(MODEL)
    assert caught.value.code == "permission_denied" and caught.value.param == "model"


def _emulator_model(emulator: Emulator, tmp_path: Path) -> str:
    """A fine-tuned model the emulator really made."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    provider = emulator.provider()
    file_id = provider.upload_file(path, "train.jsonl")
    created = provider.create_job(JobSpec(ftq_job_id="ftj_x", model=MODEL, training_file=file_id))
    emulator.control.advance(created.id)
    model = provider.get_job(created.id).fine_tuned_model
    assert model is not None
    return model


def test_deleting_a_tuned_model_deletes_it_at_the_emulator_and_unlists_it(
    client: TestClient,
    session: Session,
    settings_env: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    settings_env.setenv("FTQ_EMULATOR_URL", f"{fresh_emulator.root}/v1")
    reset_settings()
    model = _emulator_model(fresh_emulator, tmp_path)
    team, api = _team(client, session, "owner")
    job = _tuned(session, team, model)
    checkpoint = _checkpoint(session, job, 10)
    deleted = api.models.delete(model)
    assert (deleted.id, deleted.deleted, deleted.object) == (model, True, "model")
    assert fresh_emulator.calls("DELETE /v1/models/{model:path}") == 1
    listed = {m.id for m in api.models.list()}
    assert model not in listed and checkpoint in listed, "only the deleted model goes"
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve(model)
    with pytest.raises(openai.NotFoundError):
        api.models.delete(model)
    events = session.query(JobEvent).filter_by(job_id=job.id, type="model_deleted").all()
    assert [e.message for e in events] == [f"Model deleted: {model}"]
    with pytest.raises(openai.NotFoundError):
        fresh_emulator.provider().client.models.delete(model)


def test_a_model_the_provider_no_longer_has_is_unlisted_and_one_it_cannot_delete_stays(
    client: TestClient,
    session: Session,
    settings_env: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    settings_env.setenv("FTQ_EMULATOR_URL", f"{fresh_emulator.root}/v1")
    settings_env.setenv("FTQ_LOCAL_ENABLED", "true")
    reset_settings()
    team, api = _team(client, session, "owner")
    gone = _tuned(session, team, f"ft:{MODEL}:emulator::gone0000")
    assert api.models.delete(gone.fine_tuned_model or "").deleted
    assert gone.fine_tuned_model not in {m.id for m in api.models.list()}
    local = _tuned(session, team, f"local:{MODEL}:units:abc")
    local.provider = "local"
    session.flush()
    with pytest.raises(openai.BadRequestError) as caught:
        api.models.delete(local.fine_tuned_model or "")
    assert caught.value.code == "unsupported"
    assert local.fine_tuned_model in {m.id for m in api.models.list()}


def test_together_lists_its_own_models_not_openais(
    client: TestClient, session: Session, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("FTQ_TOGETHER_BASE_URL", "http://127.0.0.1:9/together")
    reset_settings()
    _, api = _team(client, session, "models-together")
    ids = {model.id for model in api.models.list()}
    llama = "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert llama in ids
    assert "together:gpt-4o-mini-2024-07-18" not in ids
    assert "gpt-4o-mini-2024-07-18" in ids, "the default provider's models stay plain"
    assert api.models.retrieve(llama).model_extra["provider"] == "together"  # type: ignore[index]
