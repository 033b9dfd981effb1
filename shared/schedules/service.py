"""Scheduled re-evaluation: one model re-scored on a cron schedule, regressions reported once.

Claiming is Postgres's job, not the broker's: the beat task `schedules.tick` locks due active
schedules (`FOR UPDATE SKIP LOCKED`), inserts the slot's run (unique per schedule and slot),
starts an ordinary eval and moves `next_run_at` past now, all in one transaction. A second beat
skips the locked rows and then sees the advanced slot; a tick that dies before committing leaves
nothing, so the retry claims the slot once. Missed slots are not replayed: one catch-up run
stands for all of them. The same tick settles runs whose eval has finished, under the run's row
lock, so `eval.regressed` is emitted by exactly one settlement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from sqlalchemy.orm import Session

from ftq.shared.errors import AppError, NotFound, Unprocessable
from ftq.shared.evals import repository as evals_repo
from ftq.shared.evals import service as evals
from ftq.shared.evals import stats
from ftq.shared.evals.schemas import Eval as EvalOut
from ftq.shared.evals.schemas import EvalCreate
from ftq.shared.ids import new_id
from ftq.shared.models import Eval, EvalSchedule, EvalScheduleRun, Team
from ftq.shared.schedules import repository
from ftq.shared.schedules.schemas import EvalSchedule as ScheduleOut
from ftq.shared.schedules.schemas import EvalScheduleCreate, LastRun
from ftq.shared.schedules.schemas import EvalScheduleRun as RunOut
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import service as webhooks

ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_TIE = 1e-9  # float noise must not turn "exactly at the edge" into a regression


# -- cron ---------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA timezone, or a 422 naming `timezone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        message = f"unknown timezone {name!r}; give an IANA name such as UTC or Europe/Paris"
        raise Unprocessable(message, param="timezone") from exc


def check_cron(expression: str, timezone: str) -> datetime:
    """The first slot after now, or a 422 naming `cron` (or `timezone`)."""
    tz = zone(timezone)
    text = expression.strip()
    shaped = text.lower() in ALIASES or len(text.split()) == 5
    if not shaped or not croniter.is_valid(text):
        raise Unprocessable(
            f"cron {expression!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 6 * * *') or an alias "
            "such as @daily",
            param="cron",
        )
    try:
        return next_slot(text, tz.key, utcnow())
    except (CroniterBadDateError, CroniterBadCronError, ValueError) as exc:
        raise Unprocessable(f"cron {expression!r} never fires", param="cron") from exc


def next_slot(expression: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC."""
    start = after.astimezone(ZoneInfo(timezone))
    found: datetime = croniter(expression, start).get_next(datetime)
    return found.astimezone(UTC)


def latest_slot(expression: str, timezone: str, at: datetime) -> datetime:
    """The last slot at or before `at`, in UTC."""
    # croniter's get_prev from an exact slot returns the one before it: start just past `at`.
    start = (at.replace(microsecond=0) + timedelta(seconds=1)).astimezone(ZoneInfo(timezone))
    found: datetime = croniter(expression, start).get_prev(datetime)
    return found.astimezone(UTC)


# -- creating and managing ----------------------------------------------------------------


def create(session: Session, team: Team, data: EvalScheduleCreate) -> EvalSchedule:
    """Accept a schedule after the checks POST /v1/evals makes; its first slot is the next one."""
    first = check_cron(data.cron, data.timezone)
    row = EvalSchedule(
        id=new_id("evs"),
        team_id=team.id,
        name=data.name,
        model=data.model,
        dataset_id=data.dataset,
        grader=data.grader,
        grader_config=_grader_input(data),
        provider=data.provider or get_settings().provider,
        max_items=data.max_items,
        cron=data.cron.strip(),
        timezone=zone(data.timezone).key,
        baseline_score=data.baseline,
        tolerance=data.tolerance,
        status="active",
        next_run_at=first,
    )
    # Exactly the eval each slot will run, refused now as POST /v1/evals would refuse it.
    evals.check(session, team, eval_request(row, first), model_param="model")
    repository.add(session, row)
    return row


def _grader_input(data: EvalScheduleCreate) -> dict[str, Any] | None:
    if data.pattern is not None:
        return {"pattern": data.pattern}
    if data.json_schema is not None:
        return {"json_schema": data.json_schema}
    if data.judge is not None:
        return {"judge": data.judge.model_dump()}
    return None


def eval_request(schedule: EvalSchedule, slot: datetime) -> EvalCreate:
    """The ordinary eval one slot of a schedule runs."""
    config = schedule.grader_config or {}
    return EvalCreate(
        dataset=schedule.dataset_id,
        models=[schedule.model],
        grader=schedule.grader,  # type: ignore[arg-type]
        pattern=config.get("pattern"),
        json_schema=config.get("json_schema"),
        judge=config.get("judge"),
        provider=schedule.provider,
        max_items=schedule.max_items,
        name=f"schedule {schedule.id} at {slot.isoformat()}",
    )


def get(session: Session, team: Team, schedule_id: str) -> EvalSchedule:
    """A team's schedule, or 404."""
    row = repository.get_for_team(session, team.id, schedule_id)
    if row is None:
        raise NotFound(f"no eval schedule {schedule_id}", param="id")
    return row


def list_page(
    session: Session, team: Team, limit: int, after: str | None
) -> tuple[list[EvalSchedule], bool]:
    """The team's schedules, newest first."""
    return repository.list_page(session, team.id, limit, after)


def _locked(session: Session, team: Team, schedule_id: str) -> EvalSchedule:
    get(session, team, schedule_id)
    row = repository.lock(session, schedule_id)
    if row is None:
        raise NotFound(f"no eval schedule {schedule_id}", param="id")
    return row


def pause(session: Session, team: Team, schedule_id: str) -> EvalSchedule:
    """Stop claiming slots (a run already started still settles); pausing twice is harmless."""
    row = _locked(session, team, schedule_id)
    row.status = "paused"
    session.flush()
    return row


def resume(session: Session, team: Team, schedule_id: str) -> EvalSchedule:
    """Claim slots again from the next one after now: slots missed while paused are skipped."""
    row = _locked(session, team, schedule_id)
    if row.status != "active":
        row.status = "active"
        row.next_run_at = next_slot(row.cron, row.timezone, utcnow())
    session.flush()
    return row


def delete(session: Session, team: Team, schedule_id: str) -> None:
    """Delete a schedule and its run history; the evals it ran stay readable."""
    repository.delete(session, _locked(session, team, schedule_id))


def runs_page(
    session: Session, team: Team, schedule_id: str, limit: int, after: str | None
) -> tuple[list[EvalScheduleRun], bool]:
    """A page of a team's schedule's runs, newest first."""
    get(session, team, schedule_id)
    return repository.runs_page(session, schedule_id, limit, after)


def history(session: Session, team: Team, schedule_id: str) -> list[EvalScheduleRun]:
    """A team's schedule's latest runs, oldest first."""
    get(session, team, schedule_id)
    return repository.history(session, schedule_id)


# -- views --------------------------------------------------------------------------------


def to_schemas(session: Session, rows: list[EvalSchedule]) -> list[ScheduleOut]:
    """API views of schedules, each with its latest run (read in one query)."""
    last = repository.last_runs(session, [row.id for row in rows])
    return [_view(row, last.get(row.id)) for row in rows]


def to_schema(session: Session, row: EvalSchedule) -> ScheduleOut:
    """The API view of one schedule."""
    return to_schemas(session, [row])[0]


def _view(row: EvalSchedule, last: EvalScheduleRun | None) -> ScheduleOut:
    last_run = None
    if last is not None:
        last_run = LastRun(
            slot=as_utc(last.slot),  # type: ignore[arg-type]
            eval_id=last.eval_id,
            status=last.status,  # type: ignore[arg-type]
            score=last.score,
            regressed=last.regressed,
        )
    return ScheduleOut(
        id=row.id,
        name=row.name,
        model=row.model,
        dataset=row.dataset_id,
        grader=row.grader,
        grader_config=row.grader_config,
        provider=row.provider,
        max_items=row.max_items,
        cron=row.cron,
        timezone=row.timezone,
        baseline=row.baseline_score,
        baseline_eval=row.baseline_eval_id,
        tolerance=row.tolerance,
        status=row.status,  # type: ignore[arg-type]
        next_run_at=as_utc(row.next_run_at),  # type: ignore[arg-type]
        last_run=last_run,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
    )


def run_schema(run: EvalScheduleRun) -> RunOut:
    """The API view of one run."""
    return RunOut(
        id=run.id,
        schedule=run.schedule_id,
        slot=as_utc(run.slot),  # type: ignore[arg-type]
        eval_id=run.eval_id,
        status=run.status,  # type: ignore[arg-type]
        score=run.score,
        interval=list(run.interval) if run.interval is not None else None,
        baseline=run.baseline,
        regressed=run.regressed,
        error=run.error,
        created_at=as_utc(run.created_at),  # type: ignore[arg-type]
        settled_at=as_utc(run.settled_at),
    )


# -- the tick -----------------------------------------------------------------------------


def claim_due(session: Session, now: datetime | None = None) -> list[EvalScheduleRun]:
    """Start one run for every due active schedule and advance it past now; the runs started."""
    now = now or utcnow()
    started = []
    for schedule in repository.due(session, now):
        run = _start(session, schedule, now)
        if run is not None:
            started.append(run)
    return started


def _start(session: Session, schedule: EvalSchedule, now: datetime) -> EvalScheduleRun | None:
    """The slot's run and its eval (None when the slot already has a run)."""
    due = as_utc(schedule.next_run_at)
    assert due is not None
    slot = max(due, latest_slot(schedule.cron, schedule.timezone, now))
    schedule.next_run_at = next_slot(schedule.cron, schedule.timezone, now)
    run = EvalScheduleRun(
        id=new_id("evr"), schedule_id=schedule.id, slot=slot, status="running", regressed=False
    )
    if not repository.insert_run(session, run):
        session.flush()
        return None
    team = session.get(Team, schedule.team_id)
    assert team is not None
    try:
        with session.begin_nested():
            run.eval_id = evals.create(session, team, eval_request(schedule, slot)).id
    except AppError as exc:  # e.g. the dataset was deleted: the slot is recorded as failed
        run.status, run.settled_at = "failed", now
        run.error = f"the eval could not start: {exc.message}"
    session.flush()
    return run


def settle_finished(session: Session) -> list[EvalScheduleRun]:
    """Score the runs whose eval has finished; emit `eval.regressed` for each regression."""
    settled = []
    for run, row in repository.unsettled(session):
        _settle(session, run, row)
        settled.append(run)
    return settled


def is_regression(
    score: float, interval: list[float] | None, baseline: float, tolerance: float
) -> bool:
    """Below the baseline by more than the tolerance, or the whole 95% interval below it."""
    below_band = score < baseline - tolerance - _TIE
    interval_below = interval is not None and interval[1] < baseline - _TIE
    return below_band or interval_below


def _settle(session: Session, run: EvalScheduleRun, row: Eval) -> None:
    schedule = repository.lock(session, run.schedule_id)
    assert schedule is not None  # the run's row would be gone with it
    view = evals.to_schema(session, row)
    result = view.results[0] if view.results else None
    run.settled_at = utcnow()
    if view.status != "completed" or result is None or result.score is None:
        run.status = "failed"
        run.error = (view.error.message if view.error else None) or "the eval produced no score"
        session.flush()
        return
    run.status, run.score = "completed", result.score
    run.interval = list(result.interval) if result.interval is not None else None
    if schedule.baseline_score is None:
        schedule.baseline_score, schedule.baseline_eval_id = result.score, row.id
    run.baseline = schedule.baseline_score
    run.regressed = is_regression(result.score, run.interval, run.baseline, schedule.tolerance)
    session.flush()
    if run.regressed:
        # Once: only the settlement that moves the locked run out of `running` gets here.
        payload = regression_payload(session, schedule, run, view)
        webhooks.emit(session, schedule.team_id, "eval.regressed", payload)


def regression_payload(
    session: Session, schedule: EvalSchedule, run: EvalScheduleRun, view: EvalOut
) -> dict[str, Any]:
    """The `eval.regressed` data: both scores, the schedule, the eval and the items that moved."""
    return {
        "schedule": schedule.id,
        "name": schedule.name,
        "model": schedule.model,
        "dataset": schedule.dataset_id,
        "grader": schedule.grader,
        "run": run.id,
        "slot": as_utc(run.slot).isoformat(),  # type: ignore[union-attr]
        "eval_id": view.id,
        "score": run.score,
        "interval": run.interval,
        "baseline": run.baseline,
        "baseline_eval": schedule.baseline_eval_id,
        "tolerance": schedule.tolerance,
        "changed_items": _changed_items(session, schedule, view.id),
    }


def _changed_items(session: Session, schedule: EvalSchedule, eval_id: str) -> dict[str, Any]:
    """Item by item against the baseline run's eval when there is one, else the failed items."""
    mine = _item_scores(session, eval_id, schedule.model)
    against = schedule.baseline_eval_id
    base = _item_scores(session, against, schedule.model) if against else {}
    if against and against != eval_id and base:
        found = stats.compare(base, mine)
        return {
            "against_eval": against,
            "n": found.n,
            "regressed": found.regressed,
            "improved": found.improved,
            "regressed_items": found.regressed_items,
            "improved_items": found.improved_items,
            "difference": found.difference,
            "interval": found.interval,
        }
    failed = sorted(index for index, score in mine.items() if score < 1.0 - _TIE)
    return {
        "against_eval": None,
        "failed": len(failed),
        "failed_items": failed[: stats.MAX_LISTED],
    }


def _item_scores(session: Session, eval_id: str, model: str) -> dict[int, float]:
    return evals_repo.scores(session, [eval_id]).get((eval_id, model), {})
