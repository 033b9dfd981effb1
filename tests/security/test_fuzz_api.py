"""Schemathesis fuzzes the API from its own OpenAPI schema, in-process: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.orm import Session

from ftq.services.api.deps import get_read_session, get_session
from ftq.services.api.main import create_app
from ftq.shared.datasets import service as datasets
from ftq.shared.settings import reset_settings
from ftq.shared.webhooks.signing import generate_secret
from tests.conftest import SentTasks
from tests.factories import ADMIN, chat_jsonl, team_row
from tests.security.routes import PUBLIC

APP = create_app()
FUZZ_SEED = 20261130
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "seed": FUZZ_SEED,
        # The coverage phase's boundary values, then bounded random fuzzing per operation.
        "phases": {"coverage": {"enabled": True, "unexpected-methods": []}},
        "generation": {"max-examples": 6, "deterministic": True, "database": "none"},
    }
)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
PUBLIC_PATHS = {path for _, path in PUBLIC}


@dataclass
class Caller:
    """A team's key and one of each of its resources, so fuzzed requests reach past lookups."""

    key: str
    ids: dict[str, str] = field(default_factory=dict)


def _resources(key: str, session: Session) -> dict[str, str]:
    """A ready dataset, a queued job and a webhook endpoint of the team."""
    headers = {"authorization": f"Bearer {key}"}
    with TestClient(APP) as http:
        files = {"file": ("train.jsonl", chat_jsonl(12), "application/jsonl")}
        dataset = http.post("/v1/datasets", files=files, headers=headers).json()
        datasets.run_validation(session, dataset["id"])
        session.commit()
        job = http.post(
            "/v1/jobs",
            json={"model": "gpt-4o-mini-2024-07-18", "training_dataset": dataset["id"]},
            headers=headers,
        ).json()
        endpoint = http.post(
            "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=headers
        ).json()
    return {"dataset_id": dataset["id"], "job_id": job["id"], "endpoint_id": endpoint["id"]}


@pytest.fixture
def caller(
    session: Session, sent_tasks: SentTasks, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Caller]:
    """The app on the test's rolled-back session, and a fresh team with its resources."""
    # Configured, so the provider webhook answers a bad signature with 401 rather than 503.
    monkeypatch.setenv("FTQ_OPENAI_WEBHOOK_SECRET", generate_secret())
    reset_settings()
    _, created = team_row(session, "fuzzed")
    session.commit()  # into the test's outer transaction, which is still rolled back at the end

    def request_session() -> Iterator[Session]:
        # Like get_session: whatever a request leaves uncommitted is rolled back after it.
        try:
            yield session
        finally:
            session.rollback()

    APP.dependency_overrides[get_session] = request_session
    APP.dependency_overrides[get_read_session] = request_session
    key = created.api_key.key
    yield Caller(key, _resources(key, session))
    APP.dependency_overrides.clear()
    monkeypatch.undo()
    reset_settings()


@SCHEMA.parametrize()
@seed(FUZZ_SEED)
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_api_fail_with_a_5xx(case: schemathesis.Case, caller: Caller) -> None:
    admin = case.path.startswith("/v1/admin/")
    headers = ADMIN if admin else {"authorization": f"Bearer {caller.key}"}
    for name in list(case.path_parameters or {}):
        # Real ids, so the fuzzed body and query reach the resource's own logic; ids that
        # name nothing are covered by tests/security/test_team_isolation.py.
        if name in caller.ids:
            case.path_parameters[name] = caller.ids[name]
    response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
    if case.path not in PUBLIC_PATHS:
        # The fuzzer must get past authentication, or it tested nothing but the 401.
        assert response.status_code != 401, response.text
