"""Evals-to-chat conversion and seeded validation splits over HTTP."""

from __future__ import annotations

import json
from itertools import islice

from fastapi.testclient import TestClient

from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.services import shared_data_or_skip


def _lines(client: TestClient, team: dict[str, object], dataset_id: str) -> list[dict]:
    content = client.get(f"/v1/datasets/{dataset_id}/content", headers=auth(team)).content
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def _evals_bytes(n: int) -> bytes:
    path = shared_data_or_skip() / "ar_lsat.jsonl"
    with path.open("rb") as handle:
        return b"".join(islice(handle, n))


def test_evals_records_convert_to_chat_examples(client: TestClient, sent_tasks: SentTasks) -> None:
    team = create_team(client)
    source = upload(client, team, _evals_bytes(12), name="ar_lsat.jsonl", purpose="eval").json()
    response = client.post(
        f"/v1/datasets/{source['id']}/convert", json={"to": "chat"}, headers=auth(team)
    )
    assert response.status_code == 201, response.text
    converted = response.json()
    assert converted["purpose"] == "fine-tune"
    assert converted["name"] == "ar_lsat-chat.jsonl"
    assert ("datasets.validate", [converted["id"]]) in sent_tasks
    originals = [json.loads(line) for line in _evals_bytes(12).splitlines()]
    examples = _lines(client, team, converted["id"])
    assert len(examples) == 12
    for original, example in zip(originals, examples, strict=True):
        assert example["messages"][:-1] == original["input"]
        assert example["messages"][-1] == {"role": "assistant", "content": original["ideal"]}


def test_conversion_names_the_first_bad_line_and_creates_nothing(client: TestClient) -> None:
    team = create_team(client)
    bad = b'{"input": [{"role": "user", "content": "q"}], "ideal": "A"}\n{"input": []}\n'
    source = upload(client, team, bad, purpose="eval").json()
    response = client.post(f"/v1/datasets/{source['id']}/convert", json={}, headers=auth(team))
    assert response.status_code == 422
    assert "line 2" in response.json()["error"]["message"]
    listed = client.get("/v1/datasets", headers=auth(team)).json()["data"]
    assert [d["id"] for d in listed] == [source["id"]]


def test_split_is_seeded_exact_and_loses_nothing(client: TestClient) -> None:
    team = create_team(client)
    content = chat_jsonl(20)
    source = upload(client, team, content).json()
    body = {"fraction": 0.25, "seed": 7}
    response = client.post(f"/v1/datasets/{source['id']}/split", json=body, headers=auth(team))
    assert response.status_code == 201, response.text
    result = response.json()
    train = _lines(client, team, result["train"]["id"])
    valid = _lines(client, team, result["validation"]["id"])
    assert (len(train), len(valid)) == (15, 5)
    original = [json.loads(line) for line in content.splitlines()]
    assert sorted(map(json.dumps, train + valid)) == sorted(map(json.dumps, original))
    again = client.post(f"/v1/datasets/{source['id']}/split", json=body, headers=auth(team))
    assert again.json()["validation"]["id"] == result["validation"]["id"]
    other_seed = {"fraction": 0.25, "seed": 8}
    moved = client.post(f"/v1/datasets/{source['id']}/split", json=other_seed, headers=auth(team))
    assert _lines(client, team, moved.json()["validation"]["id"]) != valid


def test_split_refuses_bad_fractions_and_other_teams(client: TestClient) -> None:
    team, other = create_team(client), create_team(client, name="team-b")
    source = upload(client, team, chat_jsonl(12)).json()
    path = f"/v1/datasets/{source['id']}/split"
    too_big = client.post(path, json={"fraction": 1.5}, headers=auth(team))
    assert too_big.status_code == 422
    assert client.post(path, json={"fraction": 0.2}, headers=auth(other)).status_code == 404
