"""`client.files` of the real openai SDK against ftq, strict response validation on."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.storage import get_blob_store
from tests.factories import auth, chat_jsonl, create_team
from tests.openai_kit import sdk
from tests.services import shared_data_or_skip
from tests.unit.test_emulator_contract import Contract

MODEL = "gpt-4o-mini-2024-07-18"
BAD = b'{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": []}\n' + chat_jsonl(10)


def _team(client: TestClient, name: str = "files") -> tuple[dict[str, Any], openai.OpenAI]:
    team = create_team(client, name)
    return team, sdk(client, team["api_key"]["key"])


def _create(api: openai.OpenAI, content: bytes, name: str = "train.jsonl", **kw: Any) -> Any:
    return api.files.create(
        file=(name, content, "application/jsonl"), purpose=kw.pop("purpose", "fine-tune"), **kw
    )


def _ds(file_id: str) -> str:
    return "ds_" + file_id.removeprefix("file-")


def test_an_upload_is_a_dataset_that_turns_processed_once_validated(
    client: TestClient, session: Session
) -> None:
    team, api = _team(client)
    content = chat_jsonl(12)
    created = _create(api, content)
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.filename, created.bytes, created.purpose) == (
        "train.jsonl",
        len(content),
        "fine-tune",
    )
    assert created.status == "uploaded" and created.status_details is None
    assert created.expires_at is None and created.created_at > 0
    assert created.model_extra == {"ftq_dataset_id": _ds(created.id), "validation": "validating"}
    native = client.get(f"/v1/datasets/{_ds(created.id)}", headers=auth(team))
    assert native.status_code == 200 and native.json()["purpose"] == "fine-tune"
    datasets.run_validation(session, _ds(created.id))
    shown = api.files.retrieve(created.id)
    assert shown.status == "processed" and shown.model_extra["validation"] == "ready"
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=created.id)
    assert job.training_file == created.id, "the file id is usable for a job as is"


def test_an_invalid_file_is_status_error_with_its_first_findings(
    client: TestClient, session: Session
) -> None:
    _, api = _team(client)
    created = _create(api, BAD)
    datasets.run_validation(session, _ds(created.id))
    shown = api.files.retrieve(created.id)
    assert shown.status == "error" and shown.model_extra["validation"] == "invalid"
    details = shown.status_details or ""
    assert "line 1" in details and "line 2" in details and "\n" not in details
    assert details.endswith(f"Full report: GET /v1/datasets/{_ds(created.id)}")


def test_the_same_bytes_return_the_same_file(client: TestClient) -> None:
    _, api = _team(client)
    first = _create(api, chat_jsonl(12))
    again = _create(api, chat_jsonl(12), name="other.jsonl")
    assert again.id == first.id and again.filename == "train.jsonl"
    as_eval = _create(sdk(client, api.api_key, strict=False), chat_jsonl(12), purpose="evals")
    assert as_eval.id != first.id, "dedup is per purpose"


def test_list_orders_pages_and_filters_by_purpose(client: TestClient) -> None:
    _, api = _team(client)
    made = [_create(api, chat_jsonl(12, offset=100 * i), name=f"f{i}.jsonl").id for i in range(3)]
    newest = api.files.list(limit=2)
    assert [f.id for f in newest.data] == made[::-1][:2] and newest.has_more
    rest = api.files.list(limit=2, after=newest.data[-1].id)
    assert [f.id for f in rest.data] == [made[0]] and not rest.has_more
    assert [f.id for f in api.files.list(limit=1)] == made[::-1], "the SDK follows pages"
    oldest = api.files.list(order="asc", limit=2)
    assert [f.id for f in oldest.data] == made[:2]
    assert [f.id for f in api.files.list(order="asc", after=made[0])] == made[1:]
    # evals files have purpose "evals", which the SDK's strict FileObject type lacks (OPENAI.md).
    loose = sdk(client, api.api_key, strict=False)
    evals = loose.files.create(
        file=("e.jsonl", chat_jsonl(3), "application/jsonl"), purpose="evals"
    )
    assert evals.purpose == "evals"
    assert [f.id for f in loose.files.list(purpose="evals")] == [evals.id]
    assert [f.id for f in api.files.list(purpose="fine-tune")] == made[::-1]
    assert api.files.list(purpose="batch").data == []


def test_list_is_bounded(client: TestClient) -> None:
    team, _ = _team(client)
    for limit in (0, 10_001):
        answer = client.get(f"/v1/files?limit={limit}", headers=auth(team))
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "limit"


def test_content_is_the_uploaded_bytes(client: TestClient) -> None:
    _, api = _team(client)
    content = chat_jsonl(12)
    created = _create(api, content)
    assert api.files.content(created.id).content == content


def test_delete_removes_a_file_but_not_one_a_job_uses(client: TestClient, session: Session) -> None:
    _, api = _team(client)
    spare = _create(api, chat_jsonl(12))
    deleted = api.files.delete(spare.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (spare.id, True, "file")
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(spare.id)
    used = _create(api, chat_jsonl(12, offset=50))
    datasets.run_validation(session, _ds(used.id))
    job = api.fine_tuning.jobs.create(model=MODEL, training_file=used.id)
    with pytest.raises(openai.ConflictError) as caught:
        api.files.delete(used.id)
    assert caught.value.param == "file_id" and job.id in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert api.files.retrieve(used.id).id == used.id


def test_another_teams_file_is_openais_404_on_every_route(client: TestClient) -> None:
    _, owner = _team(client, "owner")
    created = _create(owner, chat_jsonl(12))
    _, stranger = _team(client, "stranger")
    for call in (
        lambda: stranger.files.retrieve(created.id),
        lambda: stranger.files.content(created.id),
        lambda: stranger.files.delete(created.id),
        lambda: stranger.files.retrieve("file-nope"),
        lambda: stranger.files.retrieve("ds_" + created.id.removeprefix("file-")),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.param == "file_id"
        assert "No such File object: " in caught.value.message
    assert stranger.files.list().data == []
    assert owner.files.retrieve(created.id).id == created.id


def test_an_idempotency_key_replays_the_first_upload(client: TestClient) -> None:
    _, api = _team(client)
    headers = {"Idempotency-Key": "files-create-1"}
    first = _create(api, chat_jsonl(12), extra_headers=headers)
    again = api.files.with_raw_response.create(
        file=("train.jsonl", chat_jsonl(12), "application/jsonl"),
        purpose="fine-tune",
        extra_headers=headers,
    )
    assert again.headers["idempotent-replayed"] == "true" and again.parse().id == first.id
    with pytest.raises(openai.ConflictError) as reused:
        _create(api, chat_jsonl(13), extra_headers=headers)
    assert reused.value.code == "idempotency_key_reused"
    assert [f.id for f in api.files.list()] == [first.id]


@pytest.mark.parametrize("purpose", ["batch", "assistants", "vision", "user_data"])
def test_a_purpose_ftq_has_no_use_for_is_a_400(client: TestClient, purpose: str) -> None:
    team, api = _team(client)
    with pytest.raises(openai.BadRequestError) as caught:
        _create(api, chat_jsonl(12), purpose=purpose)
    assert caught.value.param == "purpose"
    assert "'fine-tune'" in caught.value.message and "'evals'" in caught.value.message
    assert api.files.list().data == []
    folder = get_blob_store().path(f"datasets/{team['id']}")
    assert not folder.exists() or not any(folder.iterdir()), "the streamed blob is removed"


def test_a_missing_purpose_or_file_is_a_400(client: TestClient) -> None:
    team, _ = _team(client)
    no_purpose = client.post(
        "/v1/files", files={"file": ("t.jsonl", chat_jsonl(12))}, headers=auth(team)
    )
    assert no_purpose.status_code == 400 and no_purpose.json()["error"]["param"] == "purpose"
    no_file = client.post("/v1/files", data={"purpose": "fine-tune"}, headers=auth(team))
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"


def test_file_objects_match_openais_description(client: TestClient, session: Session) -> None:
    spec = yaml.safe_load((shared_data_or_skip() / "openai-openapi-finetuning.yaml").read_text())
    contract = Contract(spec)
    seen: list[httpx2.Response] = []
    team = create_team(client, "contract")
    api = sdk(client, team["api_key"]["key"], on_response=lambda r: seen.append(r))
    good = _create(api, chat_jsonl(12))
    bad = _create(api, BAD, name="bad.jsonl")
    datasets.run_validation(session, _ds(bad.id))
    api.files.retrieve(good.id)
    api.files.retrieve(bad.id)
    api.files.list()
    api.files.delete(good.id)
    checked = 0
    for response in seen:
        response.read()
        operation = contract.operation(response.request.method, response.request.url.path)
        assert operation is not None, response.request.url.path
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        body = json.loads(response.content)
        assert contract.errors(schema, body) == [], (operation["operationId"], body)
        checked += 1
    assert checked == 6
