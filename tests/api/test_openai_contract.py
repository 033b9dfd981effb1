"""Every answer of ftq's OpenAI-compatible surface checked against OpenAI's own description.

A session with the real SDK (strict types) goes through files, fine-tuning jobs, events,
checkpoints, errors included (models and chat are not in that extract; the SDK's strict
types check them in their own tests); each JSON body is then validated against the response
schema of `openai-openapi-finetuning.yaml` (errors against OpenAI's error shape). Unlike the
emulator, ftq copies none of the live API's deviations: `error` is null until a job fails.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import lifecycle, repository
from ftq.shared.models import Job, JobCheckpoint, JobEvent
from tests.factories import chat_jsonl, create_team
from tests.openai_kit import sdk
from tests.unit.test_emulator_contract import ERROR_SCHEMA, Contract, Recorder, _spec_or_skip

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(_spec_or_skip())


def _session(client: TestClient, session: Session, recorder: Recorder) -> None:
    team = create_team(client, "contract")
    api = sdk(client, team["api_key"]["key"], on_response=recorder.hook)
    file = api.files.create(
        file=("train.jsonl", chat_jsonl(12), "application/jsonl"), purpose="fine-tune"
    )
    api.files.retrieve(file.id)
    datasets.run_validation(session, "ds_" + file.id.removeprefix("file-"))
    api.files.list(purpose="fine-tune")
    api.files.content(file.id).read()
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=file.id, suffix="c", seed=3)
    row = session.get(Job, "ftj_" + job.id.removeprefix("ftjob-"))
    assert row is not None
    repository.add(
        session,
        JobEvent(
            job_id=row.id,
            source="provider",
            provider_event_id="ev-1",
            type="metrics",
            message="Step 1/1: training loss=0.5",
            data={"step": 1, "train_loss": 0.5, "total_steps": 1},
        ),
        JobCheckpoint(
            job_id=row.id,
            provider_checkpoint_id="ck-1",
            step_number=1,
            fine_tuned_model_checkpoint=f"ft:{MODEL}:contract:c:abc:ckpt-step-1",
            metrics={"train_loss": 0.5},
        ),
    )
    api.fine_tuning.jobs.retrieve(job.id)
    api.fine_tuning.jobs.list(limit=5)
    api.fine_tuning.jobs.list_events(job.id)
    api.fine_tuning.jobs.checkpoints.list(job.id)
    api.fine_tuning.jobs.cancel(job.id)
    failed = api.fine_tuning.jobs.create(model=MODEL, training_file=file.id)
    failed_row = session.get(Job, "ftj_" + failed.id.removeprefix("ftjob-"))
    assert failed_row is not None
    lifecycle.fail(session, failed_row, "provider_failed", "the provider stopped")
    api.fine_tuning.jobs.retrieve(failed.id)
    for call in (
        lambda: api.fine_tuning.jobs.retrieve("ftjob-missing"),
        lambda: api.fine_tuning.jobs.create(model=MODEL, training_file="file-missing"),
        lambda: api.fine_tuning.jobs.pause(failed.id),
        lambda: api.files.retrieve("file-missing"),
        lambda: api.fine_tuning.jobs.create(
            model=MODEL, training_file=file.id, extra_body={"unknown_knob": 1}
        ),
    ):
        with pytest.raises(openai.APIStatusError):
            call()
    api.files.delete(
        api.files.create(
            file=("spare.jsonl", chat_jsonl(11), "application/jsonl"), purpose="fine-tune"
        ).id
    )


def _problems(contract: Contract, recorder: Recorder) -> tuple[set[str], list[str]]:
    covered, problems = set(), []
    for exchange in recorder.exchanges:
        where = f"{exchange.method} {exchange.path} -> {exchange.status}"
        operation = contract.operation(exchange.method, exchange.path)
        if operation is None:
            problems.append(f"{where}: not in OpenAI's description")
            continue
        if exchange.status >= 400:
            body = json.loads(exchange.body)
            problems += [f"{where}: {p}" for p in contract.errors(ERROR_SCHEMA, body)]
            covered.add("error")
            continue
        covered.add(operation["operationId"])
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if schema == {"type": "string"}:
            continue
        body: Any = json.loads(exchange.body)
        problems += [f"{where}: {p}" for p in contract.errors(schema, body)]
    return covered, problems


def test_every_compat_answer_matches_openais_description(
    contract: Contract, client: TestClient, session: Session
) -> None:
    recorder = Recorder()
    _session(client, session, recorder)
    covered, problems = _problems(contract, recorder)
    assert not problems, "\n".join(problems[:30])
    assert {
        "createFile",
        "retrieveFile",
        "listFiles",
        "deleteFile",
        "downloadFile",
        "createFineTuningJob",
        "retrieveFineTuningJob",
        "listPaginatedFineTuningJobs",
        "listFineTuningEvents",
        "listFineTuningJobCheckpoints",
        "cancelFineTuningJob",
        "error",
    } <= covered
