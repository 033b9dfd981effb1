"""Dataset queries."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, defer

from ftq.shared.models import Dataset, Job
from ftq.shared.pagination import paginate


def get_for_team(session: Session, team_id: str, dataset_id: str) -> Dataset | None:
    """A team's dataset by id (another team's is None)."""
    return session.scalar(_FOR_TEAM, {"dataset_id": dataset_id, "team_id": team_id})


_FOR_TEAM = select(Dataset).where(
    Dataset.id == bindparam("dataset_id"), Dataset.team_id == bindparam("team_id")
)


def find_duplicate(session: Session, team_id: str, sha256: str, purpose: str) -> Dataset | None:
    """The team's dataset with the same bytes and purpose, if any."""
    return session.scalar(
        select(Dataset).where(
            Dataset.team_id == team_id, Dataset.sha256 == sha256, Dataset.purpose == purpose
        )
    )


def list_for_team(
    session: Session, team_id: str, *, limit: int, after: str | None
) -> tuple[list[Dataset], bool]:
    """A page of the team's datasets, newest first."""
    query = select(Dataset).where(Dataset.team_id == team_id)
    return paginate(session, query, Dataset.id, limit=limit, after=after)


def lock(session: Session, dataset_id: str) -> Dataset | None:
    """A dataset row locked for update."""
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id).with_for_update())


def jobs_using(session: Session, dataset_id: str) -> list[Job]:
    """Jobs that train or validate on the dataset."""
    query = select(Job).where(
        (Job.training_dataset_id == dataset_id) | (Job.validation_dataset_id == dataset_id)
    )
    return list(session.scalars(query))


def add(session: Session, dataset: Dataset) -> None:
    """Stage a new dataset and flush."""
    session.add(dataset)
    session.flush()


def delete(session: Session, dataset: Dataset) -> None:
    """Delete a dataset row."""
    session.delete(dataset)
    session.flush()


def list_by_purpose(
    session: Session,
    team_id: str,
    *,
    purpose: str | None,
    limit: int,
    after: str | None,
    newest_first: bool,
) -> tuple[list[Dataset], bool]:
    """A page of the team's datasets of one purpose (or all), reports loaded only when read."""
    query = select(Dataset).where(Dataset.team_id == team_id).options(defer(Dataset.report))
    if purpose is not None:
        query = query.where(Dataset.purpose == purpose)
    return paginate(session, query, Dataset.id, limit=limit, after=after, newest_first=newest_first)
