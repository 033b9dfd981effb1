"""Plain factory functions for tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

ADMIN = {"authorization": "Bearer dev-admin-token"}


def chat_line(i: int) -> dict[str, Any]:
    """One valid chat example."""
    return {
        "messages": [
            {"role": "system", "content": "You convert units."},
            {"role": "user", "content": f"How many metres is {i} kilometres?"},
            {"role": "assistant", "content": f"{i} km = {i * 1000} m."},
        ]
    }


def chat_jsonl(n: int = 12, offset: int = 0) -> bytes:
    """A valid chat dataset of n examples."""
    return "".join(json.dumps(chat_line(i + offset)) + "\n" for i in range(n)).encode()


def create_team(client: TestClient, name: str = "team-a", **fields: Any) -> dict[str, Any]:
    """Create a team through the admin API; returns the response with its key."""
    response = client.post("/v1/admin/teams", json={"name": name, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


def auth(team: dict[str, Any]) -> dict[str, str]:
    """Headers carrying a team's key."""
    return {"authorization": f"Bearer {team['api_key']['key']}"}


def upload(
    client: TestClient,
    team: dict[str, Any],
    content: bytes,
    filename: str = "train.jsonl",
    **fields: str,
) -> Any:
    """POST /v1/datasets with a file."""
    files = {"file": (filename, content, "application/jsonl")}
    return client.post("/v1/datasets", files=files, data=fields, headers=auth(team))


def team_row(session: Any, name: str = "team-orm") -> Any:
    """A team created through the service layer."""
    from ftq.shared.teams import service
    from ftq.shared.teams.schemas import TeamCreate

    created = service.create_team(session, TeamCreate(name=name))
    return service.get_team(session, created.id), created


def dataset_row(team: Any, **fields: Any) -> Any:
    """A dataset row with no file behind it (`status` ready unless given), not yet added."""
    from ftq.shared.ids import new_id
    from ftq.shared.models import Dataset

    values: dict[str, Any] = {"status": "ready", "n_examples": None, **fields}
    return Dataset(
        id=new_id("ds"),
        team_id=team.id,
        name="d.jsonl",
        purpose="fine-tune",
        bytes=10,
        sha256=new_id("sha"),
        blob_key="x",
        provider_files={},
        **values,
    )


def job_row(session: Any, team: Any, **fields: Any) -> Any:
    """A submitted job with its dataset, written directly."""
    from ftq.shared.ids import new_id
    from ftq.shared.models import Job

    dataset = dataset_row(team)
    session.add(dataset)
    session.flush()
    job = Job(
        id=new_id("ftj"),
        team_id=team.id,
        provider="emulator",
        training_dataset_id=dataset.id,
        method={},
        job_metadata={},
        **{
            "model": "gpt-4o-mini-2024-07-18",
            "status": "submitted",
            "provider_job_id": "ftjob-1",
            **fields,
        },
    )
    session.add(job)
    session.flush()
    return job


@contextmanager
def committed_team(
    client: TestClient, label: str, **fields: Any
) -> Iterator[tuple[dict[str, Any], str]]:
    """A team and its validated chat dataset, committed through a real app's client (no test
    session), deleted with everything of theirs afterwards."""
    import uuid

    from sqlalchemy import delete

    from ftq.shared.datasets import service as datasets
    from ftq.shared.db import get_sessionmaker
    from ftq.shared.models import Team

    make = get_sessionmaker()
    team = create_team(client, f"{label}-{uuid.uuid4().hex[:8]}", **fields)
    try:
        dataset = upload(client, team, chat_jsonl(12)).json()["id"]
        with make() as db:
            datasets.run_validation(db, dataset)
            db.commit()
        yield team, str(dataset)
    finally:
        with make() as db:
            db.execute(delete(Team).where(Team.id == team["id"]))
            db.commit()
