"""A create's quota count and queue place read unfinished jobs only, however long the history:
Postgres plans them on the partial indexes of migration 0017, prepared (generic) plans too."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ftq.shared.jobs import repository
from ftq.shared.jobs.schemas import ACTIVE_STATUSES, SLOT_STATUSES
from ftq.shared.migrate import downgrade, upgrade
from ftq.shared.models import Job
from ftq.shared.models.job import QUEUED_PREDICATE, SLOTS_PREDICATE, UNFINISHED_PREDICATE
from tests.factories import job_row, team_row
from tests.services import postgres_url_or_skip

MODEL = "history-model"
PARTIAL = {"ix_jobs_team_id_unfinished", "ix_jobs_slots", "ix_jobs_queued"}


def _statuses(predicate: str) -> set[str]:
    return set(re.findall(r"'(\w+)'", predicate))


def test_the_index_predicates_name_the_statuses_the_code_counts() -> None:
    assert _statuses(UNFINISHED_PREDICATE) == ACTIVE_STATUSES
    assert _statuses(SLOTS_PREDICATE) == SLOT_STATUSES
    assert _statuses(QUEUED_PREDICATE) == {"queued"}


def _job_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes("jobs")}
    finally:
        engine.dispose()


def test_migration_0017_adds_the_partial_indexes_and_takes_them_back(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    upgrade(url, "0017")
    assert _job_indexes(url) >= PARTIAL
    downgrade(url, "0016")
    assert not _job_indexes(url) & PARTIAL
    upgrade(url, "head")
    assert _job_indexes(url) >= PARTIAL


@pytest.fixture
def history(session: Session) -> tuple[str, str]:
    """A team with 3,000 finished jobs of one model, two queued and one running; (team, job)."""
    if session.get_bind().dialect.name != "postgresql":
        postgres_url_or_skip()
    team = team_row(session, "long-history")[0]
    template = job_row(session, team, model=MODEL, status="cancelled", provider_job_id=None)
    columns = [c.name for c in Job.__table__.columns]
    copied = ", ".join("'ftj_h' || n" if c == "id" else c for c in columns)
    session.execute(
        text(
            f"INSERT INTO jobs ({', '.join(columns)}) SELECT {copied} "
            "FROM jobs, generate_series(1, 3000) AS n WHERE jobs.id = :id"
        ),
        {"id": template.id},
    )
    job_row(session, team, model=MODEL, status="running", provider_job_id=None)
    job_row(session, team, model=MODEL, status="queued", provider_job_id=None)
    newest = job_row(session, team, model=MODEL, status="queued", provider_job_id=None)
    return team.id, newest.id


def _plans(session: Session, sql: str, values: list[str]) -> list[str]:
    """The plan as Postgres picks it, then as a prepared statement's generic plan."""
    literal = sql
    for n, value in enumerate(values, start=1):
        literal = literal.replace(f"${n}", f"'{value}'")
    custom = "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {literal}")))
    session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    session.execute(text(f"PREPARE history_plan AS {sql}"))
    try:
        arguments = ", ".join(f"'{value}'" for value in values)
        rows = session.execute(text(f"EXPLAIN EXECUTE history_plan({arguments})"))
        generic = "\n".join(row[0] for row in rows)
    finally:
        session.execute(text("DEALLOCATE history_plan"))
    return [custom, generic]


def test_counting_a_teams_unfinished_jobs_reads_only_those(
    session: Session, history: tuple[str, str]
) -> None:
    team_id, _ = history
    assert repository.count_active(session, team_id) == 3
    compiled = str(repository._COUNT_ACTIVE.compile(dialect=postgresql.dialect()))
    for plan in _plans(session, compiled.replace("%(team_id)s", "$1"), [team_id]):
        assert "ix_jobs_team_id_unfinished" in plan, plan


def test_a_new_jobs_queue_place_reads_only_unfinished_jobs(
    session: Session, history: tuple[str, str]
) -> None:
    _, job_id = history
    assert repository.queue_place(session, job_id, "emulator", MODEL) == 2
    sql = str(repository._QUEUE_PLACE)
    sql = sql.replace(":job_id", "$1").replace(":provider", "$2").replace(":model", "$3")
    for plan in _plans(session, sql, [job_id, "emulator", MODEL]):
        assert "ix_jobs_slots" in plan and "ix_jobs_queued" in plan, plan
        assert "ix_jobs_provider_model_status" not in plan, plan
