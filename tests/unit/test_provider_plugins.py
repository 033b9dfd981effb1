"""Providers are plugins: ftq's own register through `ftq.providers`, and so can a package's."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.providers import registry
from ftq.shared.providers.plugins import ENTRY_POINT_GROUP
from tests.factories import auth, chat_jsonl, create_team, upload

PLUGIN = """
from dataclasses import dataclass
from ftq.shared.providers.base import ProviderBase, ProviderJob
from ftq.shared.providers.plugins import COMMON_HYPERPARAMETERS, Capabilities


class AcmeProvider(ProviderBase):
    name = "acme"

    def __init__(self, key):
        self.key = key

    def get_job(self, provider_job_id):
        return ProviderJob(id=provider_job_id, status="running")


@dataclass(frozen=True)
class AcmePlugin:
    name: str = "acme"
    capabilities: Capabilities = Capabilities(
        hyperparameters=COMMON_HYPERPARAMETERS | {"acme_boost"}, limits="tests only"
    )

    def missing_settings(self, settings):
        return None

    def build(self, settings, credential=None):
        return AcmeProvider(credential.api_key if credential else "server-key")


ACME = AcmePlugin()
"""


@pytest.fixture
def installed_plugins(tmp_path: Path) -> Iterator[Path]:
    """A third-party package `acme_ftq` (plus a broken one) installed on sys.path."""
    (tmp_path / "acme_ftq").mkdir()
    (tmp_path / "acme_ftq" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "acme_ftq-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ftq\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_ftq:ACME\nbroken = acme_ftq_missing:PLUGIN\n"
    )
    sys.path.insert(0, str(tmp_path))
    registry.plugins.cache_clear()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("acme_ftq", None)
    registry.plugins.cache_clear()


def test_the_builtin_providers_register_through_the_entry_point_group() -> None:
    points = distribution("ftq").entry_points.select(group=ENTRY_POINT_GROUP)
    names = {point.name for point in points}
    assert {"emulator", "openai", "azure-openai", "local"} <= names
    assert registry.provider_names()[:4] == ("emulator", "openai", "azure-openai", "local")


def test_a_package_adds_a_provider_and_a_broken_one_is_skipped(
    installed_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="ftq.shared.providers.registry"):
        names = registry.provider_names()
    assert "acme" in names and "broken" not in names
    assert "emulator" in names, "a broken plugin does not hide the others"
    assert any(
        "broken" in r.getMessage() and "failed to load" in r.getMessage() for r in caplog.records
    )
    provider: Any = registry.get_provider("acme")
    assert provider.key == "server-key"
    assert provider.get_job("acme-1").status == "running"
    assert "acme" in registry.configured_providers()


def test_jobs_go_to_a_plugin_provider_and_its_own_options_are_checked(
    installed_plugins: Path, client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body: dict[str, Any] = {"model": "gpt-4o-mini-2024-07-18", "training_dataset": dataset["id"]}
    created = client.post("/v1/jobs", json={**body, "provider": "acme"}, headers=auth(team))
    assert created.status_code == 201, created.text
    assert created.json()["provider"] == "acme"

    lora = {"type": "supervised", "hyperparameters": {"lora_rank": 8}}
    refused = client.post(
        "/v1/jobs", json={**body, "provider": "acme", "method": lora}, headers=auth(team)
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "method.hyperparameters.lora_rank"
    assert "not of 'acme'" in refused.json()["error"]["message"]


def test_an_unknown_provider_is_a_422_listing_the_installed_ones(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    body = {"model": "gpt-4o-mini-2024-07-18", "training_dataset": dataset["id"], "provider": "x"}
    response = client.post("/v1/jobs", json=body, headers=auth(team))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "provider"
    assert "emulator" in error["message"] and "openai" in error["message"]
