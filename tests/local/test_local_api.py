"""The API around local jobs: LoRA hyperparameters accepted and checked, artifacts only for
succeeded local jobs."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.local.helpers import require_local_stack


def _dataset(client: TestClient, session: Session, team: dict) -> str:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    return str(dataset["id"])


def test_local_job_takes_lora_hyperparameters(client: TestClient, session: Session):
    require_local_stack()
    team = create_team(client)
    hyper = {"n_epochs": 2, "lora_rank": 8, "lora_alpha": 16, "lora_target_modules": ["q_proj"]}
    body = {
        "model": "smollm2-135m",
        "provider": "local",
        "training_dataset": _dataset(client, session, team),
        "method": {"type": "supervised", "hyperparameters": hyper},
    }
    response = client.post("/v1/jobs", json=body, headers=auth(team))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["provider"] == "local"
    assert job["method"]["hyperparameters"]["lora_rank"] == 8

    body["method"]["hyperparameters"] = {"lora_rank": 0}
    refused = client.post("/v1/jobs", json=body, headers=auth(team))
    assert refused.status_code == 422
    assert "lora_rank" in refused.text

    missing = client.get(f"/v1/jobs/{job['id']}/artifacts", headers=auth(team))
    assert missing.status_code == 404
    assert "no artifacts" in missing.json()["error"]["message"]
    other = create_team(client, name="team-b")
    assert client.get(f"/v1/jobs/{job['id']}/artifacts", headers=auth(other)).status_code == 404


def test_a_local_base_model_must_be_on_the_allow_list(
    client: TestClient, session: Session, tmp_path, monkeypatch
):
    from ftq.shared.settings import reset_settings

    folder = tmp_path / "somewhere"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("FTQ_LOCAL_ENABLED", "true")
    monkeypatch.setenv("FTQ_LOCAL_MODELS", f"mine={folder}")
    reset_settings()
    team = create_team(client)
    dataset = _dataset(client, session, team)
    for name in (str(folder), "../../etc", "/etc/passwd", "not-configured"):
        body = {"model": name, "provider": "local", "training_dataset": dataset}
        refused = client.post("/v1/jobs", json=body, headers=auth(team))
        assert refused.status_code == 422, (name, refused.text)
        assert refused.json()["error"]["param"] == "model"
        assert "mine" in refused.json()["error"]["message"], "it names the allowed models"
    assert client.get("/v1/jobs", headers=auth(team)).json()["data"] == [], "nothing written"
    body = {"model": "mine", "provider": "local", "training_dataset": dataset}
    assert client.post("/v1/jobs", json=body, headers=auth(team)).status_code == 201
    reset_settings()
