"""Provider slots, fair admission across teams, and the monthly budget.

Each (provider, model) has a capacity: how many of its jobs may hold a slot (be `uploading`,
`submitted` or `running`) at once. It defaults to OpenAI's reported cap of a few active jobs per
model and is configured with `FTQ_PROVIDER_CAPACITY`. Jobs beyond it wait in `queued`.

Free slots go out in fair order: the team holding the fewest slots of that (provider, model) goes
next, ties broken by who has waited longest (its oldest queued job). Two teams with nothing
running therefore alternate (round-robin), oldest first within a team, and a team with 50 queued
jobs cannot starve a team with one. Admission runs while holding the capacity row `FOR UPDATE`
(queued rows are taken with `SKIP LOCKED`), so concurrent workers never hand out a slot twice.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from ftq.shared.jobs import lifecycle, repository
from ftq.shared.models import Job, JobRecord, Team
from ftq.shared.settings import Settings, get_settings
from ftq.shared.timeutil import utcnow


class Queued(Protocol):
    """What fair ordering needs of a queued job."""

    @property
    def team_id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


Q = TypeVar("Q", bound=Queued)


def capacity_for(provider: str, model: str, settings: Settings | None = None) -> int:
    """The configured slots of (provider, model): "provider:model", "provider", "*", default."""
    settings = settings or get_settings()
    table = settings.provider_capacity
    for key in (f"{provider}:{model}", provider, "*"):
        if key in table:
            return max(0, int(table[key]))
    return max(0, settings.default_provider_capacity)


def fair_order(queued: Sequence[Q], active: dict[str, int]) -> list[Q]:
    """The order in which `queued` (oldest first per team) would take slots.

    Repeatedly the team holding the fewest slots goes next (then the one whose next job is
    oldest); each pick counts as a slot it holds from then on.
    """
    per_team: dict[str, list[Q]] = defaultdict(list)
    for job in sorted(queued, key=lambda j: _key(j.created_at)):
        per_team[job.team_id].append(job)
    heap = [
        (active.get(team, 0), _key(jobs[0].created_at), team, 0) for team, jobs in per_team.items()
    ]
    heapq.heapify(heap)
    order: list[Q] = []
    while heap:
        held, _, team, index = heapq.heappop(heap)
        jobs = per_team[team]
        order.append(jobs[index])
        if index + 1 < len(jobs):
            heapq.heappush(heap, (held + 1, _key(jobs[index + 1].created_at), team, index + 1))
    return order


def _key(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def schedule(session: Session, provider: str, model: str) -> list[Job]:
    """Admit ready queued jobs of (provider, model) into free slots, in fair order.

    Admitted jobs move to `uploading` and get a `jobs.submit` outbox row; the caller commits.
    """
    row = repository.lock_capacity(session, provider, model, capacity_for(provider, model))
    active = repository.active_by_team(session, provider, model)
    free = row.capacity - sum(active.values())
    if free <= 0:
        return []
    candidates = repository.ready_queued(session, provider, model)
    admitted = fair_order(candidates, active)[:free]
    for job in admitted:
        lifecycle.admit(session, job)
    session.flush()
    return admitted


_CACHED_ORDERS: dict[tuple[str, str, str], tuple[float, dict[str, int]]] = {}


def queue_position(session: Session, job: JobRecord) -> int | None:
    """A queued job's place, from a fair order at most FTQ_QUEUE_POSITION_CACHE_SECONDS old.

    Reading one job must not cost the whole queue: the order is computed once per interval per
    (provider, model) in this process. A job newer than the cached order (one just created)
    gets its exact place counted by the database, without the whole queue coming back.
    """
    ttl = get_settings().queue_position_cache_seconds
    key = (str(session.get_bind().engine.url), job.provider, job.model)
    now = time.monotonic()
    cached = _CACHED_ORDERS.get(key)
    if ttl > 0 and cached is not None and cached[0] > now:
        if job.id in cached[1]:
            return cached[1][job.id]
        return repository.queue_place(session, job.id, job.provider, job.model)
    positions = queue_positions(session, job.provider, job.model)
    if ttl > 0:
        _CACHED_ORDERS[key] = (now + ttl, positions)
    return positions.get(job.id)


def queue_positions(session: Session, provider: str, model: str) -> dict[str, int]:
    """1-based places of the queued jobs of (provider, model) in the fair order."""
    rows, active = repository.queue_of(session, provider, model)
    order = fair_order([_Row(job_id, team, created) for job_id, team, created in rows], active)
    return {row.id: place for place, row in enumerate(order, start=1)}


class _Row:
    __slots__ = ("created_at", "id", "team_id")

    def __init__(self, job_id: str, team_id: str, created_at: datetime) -> None:
        self.id, self.team_id, self.created_at = job_id, team_id, created_at


# -- budget ---------------------------------------------------------------------------------


def month_start(now: datetime | None = None) -> datetime:
    """00:00 UTC on the first day of the current month."""
    now = (now or utcnow()).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spent_this_month(session: Session, team_id: str, exclude: str | None = None) -> Decimal:
    """The team's estimated spend this month (jobs queued, running or sent to a provider)."""
    return repository.month_cost(session, team_id, month_start(), exclude)


def over_budget(
    session: Session, team: Team, cost: Decimal | None, exclude: str | None = None
) -> str | None:
    """Why a job of estimated `cost` would break the team's monthly budget, or None."""
    if team.monthly_budget_usd is None or cost is None:
        return None
    spent = spent_this_month(session, team.id, exclude)
    budget = Decimal(team.monthly_budget_usd)
    if spent + cost <= budget:
        return None
    return (
        f"this job's estimated cost ${cost:.2f} on top of ${spent:.2f} already committed this "
        f"month exceeds the team's monthly budget of ${budget:.2f}; raise the budget or wait "
        "for next month"
    )


def pairs_to_schedule(session: Session) -> Iterable[tuple[str, str]]:
    """(provider, model) pairs with ready queued jobs (the periodic catch-up pass)."""
    return repository.pairs_with_ready_jobs(session)
