"""QLoRA's `quantization: "4bit"`: a 422 naming the field on a cluster without CUDA, accepted on
a GPU cluster, and the trainer's precision choice for each value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.providers.local import capabilities
from ftq.shared.settings import reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload


@pytest.fixture
def local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local provider on, one allowed model folder (nothing loaded: no torch needed)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("FTQ_LOCAL_ENABLED", "true")
    monkeypatch.setenv("FTQ_LOCAL_MODELS", f"mine={folder}")
    reset_settings()
    yield
    reset_settings()


def _body(client: TestClient, session: Session, team: dict, **hyper: object) -> dict:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    return {
        "model": "mine",
        "provider": "local",
        "training_dataset": dataset["id"],
        "method": {"type": "supervised", "hyperparameters": hyper},
    }


def test_4bit_on_a_cluster_without_cuda_is_a_422_naming_the_field(
    client: TestClient, session: Session, local_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTQ_LOCAL_CUDA", "false")
    reset_settings()
    team = create_team(client)
    refused = client.post(
        "/v1/jobs", json=_body(client, session, team, quantization="4bit"), headers=auth(team)
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["param"] == "method.hyperparameters.quantization"
    assert "needs a CUDA GPU and bitsandbytes; this cluster has none" in error["message"]
    assert client.get("/v1/jobs", headers=auth(team)).json()["data"] == [], "nothing written"

    plain = client.post(
        "/v1/jobs", json=_body(client, session, team, quantization="none"), headers=auth(team)
    )
    assert plain.status_code == 201, plain.text
    bad = client.post(
        "/v1/jobs", json=_body(client, session, team, quantization="8bit"), headers=auth(team)
    )
    assert bad.status_code == 422 and "quantization" in bad.text


def test_4bit_is_accepted_on_a_declared_gpu_cluster_and_reaches_the_run(
    client: TestClient, session: Session, local_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTQ_LOCAL_CUDA", "true")
    reset_settings()
    team = create_team(client)
    created = client.post(
        "/v1/jobs", json=_body(client, session, team, quantization="4bit"), headers=auth(team)
    )
    assert created.status_code == 201, created.text
    method = created.json()["method"]
    assert method["hyperparameters"]["quantization"] == "4bit"
    from ftq.shared.jobs.schemas import Method

    # What the local provider's run stores (and its trainer reads through hyper.method_params).
    sent = Method.model_validate(method).to_provider("local")
    assert sent["supervised"]["hyperparameters"]["quantization"] == "4bit"


def test_quantization_is_a_local_setting_only(client: TestClient, session: Session) -> None:
    team = create_team(client)
    body = _body(client, session, team, quantization="4bit")
    body.pop("provider")
    body["model"] = "gpt-4o-mini-2024-07-18"
    refused = client.post("/v1/jobs", json=body, headers=auth(team))
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "method.hyperparameters.quantization"


def test_the_openai_shape_carries_quantization_too() -> None:
    method = {"type": "dpo", "dpo": {"hyperparameters": {"quantization": "4bit"}}}
    assert capabilities.requested_quantization(method) == "4bit"
    assert capabilities.requested_quantization({"type": "supervised"}) is None


def test_precision_per_value_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="needs a CUDA GPU and bitsandbytes"):
        capabilities.precision({"quantization": "4bit"}, "cpu")
    assert capabilities.precision({}, "cpu") == capabilities.Precision(False, False)
    assert capabilities.precision({"quantization": "none"}, "cpu").load_in_4bit is False

    monkeypatch.setattr(capabilities, "_installed", lambda name: True)
    monkeypatch.setattr(capabilities, "_bf16", lambda device: device == "cuda")
    assert capabilities.precision({"quantization": "4bit"}, "cuda") == capabilities.Precision(
        True, True
    )
    assert capabilities.precision({"quantization": "none"}, "cuda") == capabilities.Precision(
        False, True
    )
    assert capabilities.precision({}, "cuda").load_in_4bit is True  # FTQ_LOCAL_QUANTIZE_4BIT
    monkeypatch.setattr(capabilities, "_installed", lambda name: name != "bitsandbytes")
    with pytest.raises(RuntimeError, match="without bitsandbytes"):
        capabilities.precision({"quantization": "4bit"}, "cuda")


def test_a_cuda_cluster_without_bitsandbytes_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "detect", lambda: capabilities.Cluster(True, False, False))
    monkeypatch.delenv("FTQ_LOCAL_CUDA", raising=False)
    reset_settings()
    method = {"type": "supervised", "hyperparameters": {"quantization": "4bit"}}
    with pytest.raises(Exception, match="this cluster has no bitsandbytes"):
        capabilities.check_job("mine", method)
    capabilities.check_job("mine", {"type": "supervised", "hyperparameters": {}})


def test_a_ray_cluster_is_asked_for_its_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftq.shared.providers.local import ray_cluster

    monkeypatch.delenv("FTQ_LOCAL_CUDA", raising=False)
    monkeypatch.setenv("FTQ_LOCAL_BACKEND", "ray")
    monkeypatch.setenv("FTQ_RAY_ADDRESS", "http://ray-head:8265")
    reset_settings()
    method = {"type": "supervised", "hyperparameters": {"quantization": "4bit"}}
    cpu_only = ray_cluster.Resources(cpus=8, gpus=0, node_cpus=4, node_gpus=0)
    monkeypatch.setattr(ray_cluster, "resources", lambda: cpu_only)
    with pytest.raises(Exception, match="this cluster has none"):
        capabilities.check_job("mine", method)
    with_gpus = ray_cluster.Resources(cpus=16, gpus=4, node_cpus=8, node_gpus=2)
    monkeypatch.setattr(ray_cluster, "resources", lambda: with_gpus)
    capabilities.check_job("mine", method)
    reset_settings()


def test_the_fine_tuning_route_refuses_4bit_on_a_cpu_cluster(
    client: TestClient, session: Session, local_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTQ_LOCAL_CUDA", "false")
    reset_settings()
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body = {
        "model": "local:mine",
        "training_file": "file-" + dataset["id"].removeprefix("ds_"),
        "method": {
            "type": "supervised",
            "supervised": {"hyperparameters": {"quantization": "4bit"}},
        },
    }
    refused = client.post("/v1/fine_tuning/jobs", json=body, headers=auth(team))
    assert refused.status_code == 400, refused.text  # OpenAI's status for a refused body
    error = refused.json()["error"]
    assert error["param"].endswith("quantization") and "CUDA GPU" in error["message"]
