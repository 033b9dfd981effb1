"""The providers' SDK clients talk the right dialect: Azure paths, api-version, credentials,
deployments; OpenAI's base URL and organisation; every call counted in Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ftq.shared.errors import Unprocessable
from ftq.shared.observability.metrics import PROVIDER_CALLS
from ftq.shared.providers.base import JobSpec, ProviderRejected
from ftq.shared.providers.builtin import azure_client
from ftq.shared.providers.registry import check_configured, get_provider
from ftq.shared.settings import Settings
from tests.factories import chat_jsonl
from tests.unit.test_providers_kit import MODEL, Emulator
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

API_VERSION = "2025-04-01-preview"


def _exercise(provider: Any, tmp_path: Path) -> str:
    """Every provider operation ftq uses once; returns the provider job id."""
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    file_id = provider.upload_file(path, "ftq-ds_1-train.jsonl")
    assert provider.find_file("ftq-ds_1-train.jsonl", path.stat().st_size) == file_id
    assert provider.file_exists(file_id)
    job = provider.create_job(JobSpec(ftq_job_id="ftj_shape", model=MODEL, training_file=file_id))
    assert provider.find_job("ftj_shape") == job
    assert provider.get_job(job.id).id == job.id
    assert job.id in [j.id for j in provider.list_jobs().jobs]
    assert provider.events_after(job.id, None)
    assert provider.list_checkpoints(job.id) == []
    assert provider.cancel_job(job.id).status == "cancelled"
    return str(job.id)


def test_azure_requests_use_openai_paths_api_version_key_and_deployments(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    settings = Settings(
        azure_endpoint=fresh_emulator.root,
        azure_api_version=API_VERSION,
        azure_api_key=SecretStr("azure-key-123"),
        azure_deployments={MODEL: "gpt-4o-mini"},  # our deployment of the base model
    )
    provider = get_provider("azure-openai", settings)
    _exercise(provider, tmp_path)
    answer = provider.complete_chat(MODEL, [{"role": "user", "content": "1 km in m?"}])
    assert answer.text
    requests = fresh_emulator.control.requests()
    assert len(requests) >= 11
    for request in requests:
        assert request["api"] == "azure" and request["path"].startswith("/openai/")
        assert request["query"].get("api-version") == API_VERSION
        assert request["auth"] == "api-key"
        assert request["status"] < 400, request
    chat = [r for r in requests if r["path"].endswith("/chat/completions")]
    assert [r["path"] for r in chat] == ["/openai/deployments/gpt-4o-mini/chat/completions"]
    jobs = {r["path"] for r in requests if "fine_tuning" in r["path"]}
    assert "/openai/fine_tuning/jobs" in jobs
    assert not any("deployments" in p for p in jobs), "fine-tuning is not per deployment"


def test_azure_with_an_entra_id_token_sends_a_bearer_token(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    settings = Settings(azure_endpoint=fresh_emulator.root, azure_ad_token=SecretStr("eyJ-entra"))
    get_provider("azure-openai", settings).list_jobs()
    calls: list[str] = []

    def token() -> str:
        calls.append("token")
        return "eyJ-from-provider"

    client = azure_client(Settings(azure_endpoint=fresh_emulator.root), token_provider=token)
    client.fine_tuning.jobs.list()
    assert [r["auth"] for r in fresh_emulator.control.requests()] == ["bearer", "bearer"]
    assert calls == ["token"]


def test_azure_without_an_endpoint_or_openai_without_a_key_is_a_clear_422(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name in ("azure-openai", "openai", "together"):
        with pytest.raises(Unprocessable) as caught:
            check_configured(name, Settings())
        assert caught.value.param == "provider"
    check_configured("emulator", Settings())
    check_configured("openai", Settings(openai_api_key=SecretStr("sk-test")))


def test_openai_uses_the_configured_base_url_and_organisation(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    settings = Settings(
        openai_api_key=SecretStr("sk-test"),
        openai_base_url=f"{fresh_emulator.root}/v1",
        openai_organization="org-ftq-tests",
    )
    provider = get_provider("openai", settings)
    _exercise(provider, tmp_path)
    requests = fresh_emulator.control.requests()
    assert {r["api"] for r in requests} == {"openai"}
    assert {r["organization"] for r in requests} == {"org-ftq-tests"}
    assert all(r["path"].startswith("/v1/") and r["auth"] == "bearer" for r in requests)


def _count(provider: str, operation: str, outcome: str) -> float:
    return PROVIDER_CALLS.labels(provider, operation, outcome)._value.get()


def test_every_provider_call_is_counted_by_operation_and_outcome(
    fresh_emulator: Emulator,
) -> None:
    provider = fresh_emulator.provider("emulator-metrics")
    ok = _count("emulator-metrics", "retrieve_job", "ok")
    missing = _count("emulator-metrics", "retrieve_job", "404")
    provider.list_jobs()
    with pytest.raises(ProviderRejected) as caught:
        provider.get_job("ftjob-missing")
    assert caught.value.status == 404 and "ftjob-missing" in caught.value.message
    assert _count("emulator-metrics", "retrieve_job", "404") == missing + 1
    assert _count("emulator-metrics", "retrieve_job", "ok") == ok
    assert _count("emulator-metrics", "list_jobs", "ok") >= 1
    fresh_emulator.control.faults(next_429=1)
    with pytest.raises(Exception) as limited:
        provider.list_jobs()
    assert getattr(limited.value, "retry_after", None) == pytest.approx(1.0)
    assert _count("emulator-metrics", "list_jobs", "429") == 1
