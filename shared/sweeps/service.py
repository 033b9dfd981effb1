"""Sweeps: one base job request trained with several hyperparameter sets, the best one picked.

Trials are ordinary jobs (same quotas, budget and fair scheduling as any of the team's jobs),
each scored by the sweep's eval. `advance` (beat-driven, idempotent under the sweep's row lock)
stops trials whose validation loss is clearly worse than another's at the same step and, once
every trial is settled, picks the winner and emits `sweep.completed` exactly once.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ftq.shared.errors import Conflict, NotFound, QuotaExceeded, Unprocessable
from ftq.shared.evals import service as evals
from ftq.shared.ids import new_id
from ftq.shared.jobs import lifecycle, scheduling
from ftq.shared.jobs import service as jobs
from ftq.shared.jobs.schemas import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobCreate,
    check_provider_settings,
)
from ftq.shared.models import Job, Sweep, Team
from ftq.shared.providers.registry import get_plugin
from ftq.shared.settings import get_settings
from ftq.shared.sweeps import repository
from ftq.shared.sweeps.schemas import MAX_TRIALS, EarlyStopping, Search, SweepCreate, Trial
from ftq.shared.sweeps.schemas import Sweep as SweepOut
from ftq.shared.timeutil import utcnow
from ftq.shared.webhooks import service as webhooks

SETTLED_EVALS = frozenset({"completed", "failed", "skipped"})


def trial_sets(search: Search) -> list[dict[str, Any]]:
    """The hyperparameter sets to try: every combination, or a seeded sample of them."""
    space = search.space.model_dump(exclude_none=True)
    if not space:
        raise Unprocessable("search.space names no hyperparameter to vary", param="search.space")
    names = sorted(space)
    combos = itertools.product(*(space[name] for name in names))
    grid = [dict(zip(names, values, strict=True)) for values in combos]
    if search.type == "grid":
        chosen = grid
    else:
        if search.n_trials is None:
            raise Unprocessable("a random search needs n_trials", param="search.n_trials")
        if search.n_trials > len(grid):
            raise Unprocessable(
                f"n_trials {search.n_trials} exceeds the {len(grid)} combinations of the space",
                param="search.n_trials",
            )
        chosen = random.Random(search.seed).sample(grid, search.n_trials)
    if len(chosen) > MAX_TRIALS:
        raise Unprocessable(
            f"search makes {len(chosen)} trials; a sweep has at most {MAX_TRIALS}", param="search"
        )
    return chosen


def _trial_request(data: SweepCreate, values: dict[str, Any]) -> JobCreate:
    """The base request with this trial's hyperparameters and the sweep's eval, validated."""
    body = data.base.model_dump(mode="json", exclude_unset=True)
    method = body.setdefault("method", {})
    method["hyperparameters"] = {**method.get("hyperparameters", {}), **values}
    body["eval"] = data.eval.model_dump(mode="json", exclude_unset=True)
    try:
        request = JobCreate.model_validate(body)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        message = f"trial {values} is not a valid job: {reason}"
        raise Unprocessable(message, param="search.space") from exc
    check_provider_settings(request, request.provider or get_settings().provider)
    return request


def _check_lora(data: SweepCreate) -> None:
    provider = data.base.provider or get_settings().provider
    if data.search.space.lora_rank and not get_plugin(provider).capabilities.takes("lora_rank"):
        raise Unprocessable(
            f"provider {provider} does not take lora_rank; sweep it on local or together",
            param="search.space.lora_rank",
        )


def _check_budget(session: Session, team: Team, requests: list[JobCreate]) -> Decimal | None:
    costs = [jobs.estimate_cost(session, team, request) for request in requests]
    if any(cost is None for cost in costs):
        return None
    total = sum((cost for cost in costs if cost is not None), Decimal(0))
    reason = scheduling.over_budget(session, team, total)
    if reason:
        raise QuotaExceeded(
            f"the sweep's {len(requests)} trials cost ${total:.2f} in all (estimated): {reason}",
            code="budget_exceeded",
            param="search",
        )
    return total


def create(session: Session, team: Team, data: SweepCreate) -> Sweep:
    """Accept a sweep and queue all its trials, or refuse it with nothing created."""
    _check_lora(data)
    sets = trial_sets(data.search)
    requests = [_trial_request(data, values) for values in sets]
    total = _check_budget(session, team, requests)
    sweep = Sweep(
        id=new_id("swp"),
        team_id=team.id,
        status="running",
        objective=data.objective,
        search=data.search.model_dump(mode="json", exclude_none=True),
        base=data.base.model_dump(mode="json", exclude_none=True),
        early_stopping=data.early_stopping.model_dump(mode="json"),
        estimated_cost_usd=total,
    )
    repository.add(session, sweep)
    for request, values in zip(requests, sets, strict=True):
        job = jobs.create(session, team, request)
        job.sweep_id = sweep.id
        job.stopped_early = False
        lifecycle.add_event(session, job, f"Trial of sweep {sweep.id} with {values}")
    session.flush()
    return sweep


def get(session: Session, team: Team, sweep_id: str) -> Sweep:
    """A team's sweep, or 404."""
    sweep = repository.get_for_team(session, team.id, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}", param="id")
    return sweep


def list_page(
    session: Session, team: Team, limit: int, after: str | None
) -> tuple[list[Sweep], bool]:
    """The team's sweeps, newest first."""
    return repository.list_page(session, team.id, limit, after)


def cancel(session: Session, team: Team, sweep_id: str) -> Sweep:
    """Cancel a running sweep and every trial still unfinished."""
    get(session, team, sweep_id)
    sweep = repository.lock(session, sweep_id)
    assert sweep is not None
    if sweep.status != "running":
        raise Conflict(
            f"sweep {sweep.id} is already {sweep.status}", param="id", code="sweep_not_cancellable"
        )
    for job in repository.trials(session, sweep.id):
        if job.status in ACTIVE_STATUSES:
            jobs.cancel(session, team, job.id)
    sweep.status = "cancelled"
    sweep.completed_at = utcnow()
    session.flush()
    return sweep


def running_ids(session: Session) -> list[str]:
    """The sweeps still waiting on trials."""
    return repository.running_ids(session)


def advance(session: Session, sweep_id: str) -> bool:
    """Stop clearly worse trials; once every trial is settled, pick the winner. True: finished."""
    sweep = repository.lock(session, sweep_id)
    if sweep is None or sweep.status != "running":
        return False
    trials = repository.trials(session, sweep.id)
    _stop_worse(session, sweep, trials)
    if not all(_settled(session, job) for job in trials):
        return False
    _finish(session, sweep, [_trial(session, job, sweep.search) for job in trials])
    return True


def _stop_worse(session: Session, sweep: Sweep, trials: list[Job]) -> None:
    rule = EarlyStopping.model_validate(sweep.early_stopping or {})
    if not rule.enabled:
        return
    losses = repository.valid_losses(session, [job.id for job in trials])
    team = session.get(Team, sweep.team_id)
    assert team is not None
    for job in trials:
        if job.status in ACTIVE_STATUSES and _clearly_worse(job, trials, losses, rule):
            jobs.cancel(session, team, job.id)
            job.stopped_early = True
            lifecycle.add_event(
                session, job, f"Stopped early by sweep {sweep.id}: validation loss clearly worse"
            )


def _clearly_worse(
    job: Job, trials: list[Job], losses: dict[str, dict[int, float]], rule: EarlyStopping
) -> bool:
    """Its loss at the last step it shares with another trial exceeds that one's by the margin."""
    mine = losses[job.id]
    for other in trials:
        if other.id == job.id or other.stopped_early:
            continue
        common = sorted(set(mine) & set(losses[other.id]))
        if len(common) < rule.min_evaluations:
            continue
        step = common[-1]
        if mine[step] > losses[other.id][step] * (1 + rule.margin):
            return True
    return False


def _settled(session: Session, job: Job) -> bool:
    if job.status not in TERMINAL_STATUSES:
        return False
    view = evals.job_eval(session, job)
    return view is None or job.status != "succeeded" or view.status in SETTLED_EVALS


def _finish(session: Session, sweep: Sweep, views: list[Trial]) -> None:
    scored = [view for view in views if view.score is not None]
    best = min(scored, key=_rank, default=None)
    sweep.best_job_id = best.job_id if best else None
    sweep.status = "completed" if best else "failed"
    sweep.completed_at = utcnow()
    session.flush()
    # Emitted once: only the advance that moves the locked sweep out of `running` gets here.
    payload = sweep_payload(to_schema(session, sweep, views))
    webhooks.emit(session, sweep.team_id, "sweep.completed", payload)


def _rank(view: Trial) -> tuple[float, Decimal]:
    """Best score first; on a tie the cheaper trial."""
    assert view.score is not None
    return (-view.score, view.cost_usd if view.cost_usd is not None else Decimal(0))


def _score(session: Session, job: Job) -> float | None:
    view = evals.job_eval(session, job)
    if view is None or job.fine_tuned_model is None:
        return None
    for result in view.results:
        if result.model == job.fine_tuned_model:
            return result.score
    return None


def _hyperparameters(sweep_search: dict[str, Any], job: Job) -> dict[str, Any]:
    given = (job.method or {}).get("hyperparameters") or {}
    varied = sweep_search.get("space") or {}
    return {name: given.get(name) for name in sorted(varied)}


def _trial(session: Session, job: Job, search: dict[str, Any]) -> Trial:
    return Trial(
        job_id=job.id,
        status=job.status,
        hyperparameters=_hyperparameters(search, job),
        score=_score(session, job),
        cost_usd=job.estimated_cost_usd,
        stopped_early=bool(job.stopped_early),
    )


def to_schema(session: Session, sweep: Sweep, trials: list[Trial] | None = None) -> SweepOut:
    """The API view of a sweep with every trial's hyperparameters, score and cost."""
    if trials is None:
        trials = [
            _trial(session, job, sweep.search) for job in repository.trials(session, sweep.id)
        ]
    return SweepOut(
        id=sweep.id,
        status=sweep.status,  # type: ignore[arg-type]
        objective=sweep.objective,
        search=sweep.search,
        trials=trials,
        best_job_id=sweep.best_job_id,
        estimated_cost_usd=sweep.estimated_cost_usd,
        created_at=sweep.created_at,
        completed_at=sweep.completed_at,
    )


def sweep_payload(view: SweepOut) -> dict[str, Any]:
    """The `sweep.completed` webhook data: the winner and the whole trial table."""
    data = view.model_dump(mode="json")
    data["winner"] = next((t for t in data["trials"] if t["job_id"] == view.best_job_id), None)
    return data
