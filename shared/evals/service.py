"""Evals: score models on a dataset's prompts, side by side, and tell the team.

Lifecycle: `queued` → `running` (the `evals.run` task holds a lease, copies the dataset's items in
once, asks every model every item, storing each answer as it comes) → `completed` | `failed`.
A task that crashes leaves its answers stored; the next run (redelivery or the sweep, once the
lease lapses) asks only what is missing. `eval.completed` is emitted once, by the transition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.datasets import repository as datasets_repo
from ftq.shared.datasets import service as datasets
from ftq.shared.errors import NotFound, Unprocessable
from ftq.shared.evals import checkpoints, judge, repository, retention, stats
from ftq.shared.evals.graders import check_config, grade
from ftq.shared.evals.repository import Tally
from ftq.shared.evals.runner import Answer, Work
from ftq.shared.evals.schemas import TERMINAL_STATUSES, EvalCreate, EvalError, EvalItemOut
from ftq.shared.evals.schemas import Eval as EvalOut
from ftq.shared.ids import new_id
from ftq.shared.jobs import lifecycle
from ftq.shared.jobs import repository as jobs_repo
from ftq.shared.jobs import service as jobs
from ftq.shared.jobs.schemas import EvalResult, JobEval, JobEvalRequest
from ftq.shared.models import Dataset, Eval, Job, JobRecord, Team
from ftq.shared.outbox import enqueue
from ftq.shared.providers.registry import check_configured
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import service as webhooks

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


def provider_for(model: str, default: str) -> str:
    """The provider that serves a model: `local:` models run on the local provider."""
    return "local" if model.startswith(LOCAL_PREFIX) else default


def run_task(row: Eval) -> str:
    """The task that runs an eval: local models need the GPU workers, the only ones with torch."""
    uses_local = any(provider_for(model, row.provider) == "local" for model in row.models)
    return "evals.run_local" if uses_local else "evals.run"


# -- creating -----------------------------------------------------------------------------


def create(session: Session, team: Team, data: EvalCreate) -> Eval:
    """Accept an eval; the worker runs it."""
    provider = data.provider or get_settings().provider
    config, dataset = check(session, team, data)
    row = _new(session, team.id, dataset.id, data.models, data.grader, provider, data, None)
    row.grader_config = config
    session.flush()
    return row


def check(
    session: Session, team: Team, data: EvalCreate, model_param: str = "models.{index}"
) -> tuple[dict[str, Any] | None, Dataset]:
    """Refuse an eval that could never run; its grader configuration and dataset otherwise.

    `model_param` names a refused model (`{index}`: its place in `models`).
    """
    settings = get_settings()
    if data.concurrency > settings.eval_max_concurrency:
        raise Unprocessable(
            f"concurrency is at most {settings.eval_max_concurrency}", param="concurrency"
        )
    provider = data.provider or settings.provider
    for name in sorted({provider_for(m, provider) for m in data.models}):
        check_configured(name)
    for index, model in enumerate(data.models):
        jobs.check_model_access(session, team, model, param=model_param.format(index=index))
    config = check_config(data.grader, pattern=data.pattern, json_schema=data.json_schema)
    if data.grader == "judge":
        config = _judge_config(session, team, data, provider)
    elif data.judge is not None:
        raise Unprocessable("judge is only for grader judge", param="judge")
    dataset = datasets.usable(session, team, data.dataset, "dataset", small_ok=True, ready=True)
    return config, dataset


def _judge_config(session: Session, team: Team, data: EvalCreate, default: str) -> dict[str, Any]:
    """The judge's stored configuration (its provider configured, its model the team's to ask)."""
    if data.judge is None:
        raise Unprocessable("grader judge needs judge: {model, rubric}", param="judge")
    name = data.judge.provider or provider_for(data.judge.model, default)
    try:
        check_configured(name)
    except Unprocessable as exc:
        raise Unprocessable(exc.message, param="judge.provider", code=exc.code) from exc
    jobs.check_model_access(session, team, data.judge.model, param="judge.model")
    stored = judge.stored_config(
        provider=name,
        model=data.judge.model,
        rubric=data.judge.rubric,
        temperature=data.judge.temperature,
    )
    return {"judge": stored}


def _new(
    session: Session,
    team_id: str,
    dataset_id: str,
    models: list[str],
    grader: str,
    provider: str,
    data: EvalCreate | JobEvalRequest,
    job: Job | None,
) -> Eval:
    row = Eval(
        id=new_id("ev"),
        team_id=team_id,
        job_id=job.id if job else None,
        name=getattr(data, "name", None),
        status="queued",
        dataset_id=dataset_id,
        grader=grader,
        models=list(models),
        provider=provider,
        max_items=data.max_items,
        concurrency=getattr(data, "concurrency", 4),
        runs=0,
    )
    repository.add(session, row)
    enqueue(session, run_task(row), row.id)
    return row


def check_job_request(
    session: Session, team: Team, request: JobEvalRequest, has_validation: bool
) -> None:
    """Refuse a job's eval request that could never run (naming `eval.dataset`)."""
    if request.dataset is not None:
        _check_job_dataset(session, team, request.dataset, "eval.dataset")
    elif not has_validation:
        raise Unprocessable(
            "eval.dataset is null but the job has no validation_dataset or validation_split "
            "to score on; name a dataset",
            param="eval.dataset",
        )
    if request.retention_dataset is not None:
        _check_job_dataset(session, team, request.retention_dataset, "eval.retention_dataset")


def _check_job_dataset(session: Session, team: Team, dataset_id: str, param: str) -> None:
    dataset = datasets_repo.get_for_team(session, team.id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}", param=param)
    if dataset.status != "validating" and not datasets.fit_for(dataset, small_ok=True):
        raise Unprocessable(f"dataset {dataset_id} failed validation", param=param)


def create_for_job(session: Session, job: Job) -> Eval | None:
    """The base-vs-fine-tuned eval a job asked for, once it succeeded (same transaction)."""
    if not job.eval_request or job.eval_id or not job.fine_tuned_model:
        return None
    request = JobEvalRequest.model_validate(job.eval_request)
    dataset_id = request.dataset or job.validation_dataset_id
    if dataset_id is None:
        return None
    models = [job.model, job.fine_tuned_model]
    if request.checkpoints:
        kept = _checkpoint_steps(session, job).items()
        models = checkpoints.eval_models(job.model, job.fine_tuned_model, kept)
    row = _new(session, job.team_id, dataset_id, models, request.grader, job.provider, request, job)
    job.eval_id = row.id
    return row


def start_for_job(session: Session, job: Job) -> None:
    """A job just succeeded: queue the eval it asked for and say so on its timeline."""
    row = create_for_job(session, job)
    if row is not None:
        kept = len(row.models) - 2
        also = f" and {kept} checkpoint{'s' * (kept != 1)}" if kept > 0 else ""
        lifecycle.add_event(
            session, job, f"Eval {row.id} queued: {job.model} vs {job.fine_tuned_model}{also}"
        )
    _create_retention(session, job)


def _create_retention(session: Session, job: Job) -> Eval | None:
    """Queue the job's retention check: base vs tuned on ftq's suite or the team's own."""
    request = JobEvalRequest.model_validate(job.eval_request or {})
    if not request.wants_retention or job.retention or not job.fine_tuned_model:
        return None
    dataset_id = request.retention_dataset
    if dataset_id is not None:
        own = session.get(Dataset, dataset_id)
        grader: str = request.retention_grader or "choice"
        suite = retention.team_suite_info(dataset_id, own.name if own else None)
    else:
        shipped = retention.load_suite()
        grader, suite, dataset_id = shipped.grader, shipped.info(), retention.SUITE_ID
    models = [job.model, job.fine_tuned_model]
    row = _new(session, job.team_id, dataset_id, models, grader, job.provider, request, job)
    row.name, row.max_items = f"retention check of {job.id}", request.retention_max_items
    job.retention = retention.queued(row.id, suite)
    lifecycle.add_event(session, job, f"Retention check {row.id} queued on {suite['name']}")
    session.flush()
    return row


def _checkpoint_steps(session: Session, job: Job) -> dict[str, int]:
    """The step of each model id the provider kept for the job."""
    kept = jobs_repo.checkpoints(session, job.id)
    return {c.fine_tuned_model_checkpoint: c.step_number for c in kept}


def pick_best(session: Session, job: Job, view: EvalOut) -> dict[str, Any] | None:
    """The best of a checkpoint eval's tuned models (the final one at its last step)."""
    steps = _checkpoint_steps(session, job)
    last = max(steps.values(), default=0)
    if job.fine_tuned_model not in steps:
        metrics = jobs_repo.metrics(session, job.id)
        last = max(last, metrics[-1].step if metrics else 0)
    candidates = [
        checkpoints.Candidate(r.model, steps.get(r.model, last), r.score) for r in view.results[1:]
    ]
    return checkpoints.best(candidates)


# -- reading ------------------------------------------------------------------------------


def get(session: Session, team: Team, eval_id: str) -> Eval:
    """A team's eval, or 404."""
    row = repository.get_for_team(session, team.id, eval_id)
    if row is None:
        raise NotFound(f"no eval {eval_id}", param="id")
    return row


def list_page(
    session: Session, team: Team, *, limit: int, after: str | None
) -> tuple[list[Eval], bool]:
    """A page of the team's evals."""
    return repository.list_for_team(session, team.id, limit=limit, after=after)


def to_schemas(session: Session, rows: list[Eval]) -> list[EvalOut]:
    """API views of evals (their tallies and item scores read in one query each)."""
    ids = [r.id for r in rows]
    tallies = repository.tallies(session, ids)
    scores = repository.scores(session, ids)
    return [_view(row, tallies, scores) for row in rows]


def to_schema(session: Session, row: Eval) -> EvalOut:
    """The API view of one eval."""
    return to_schemas(session, [row])[0]


Scores = dict[tuple[str, str], dict[int, float]]


def _results(row: Eval, tallies: dict[tuple[str, str], Tally], scores: Scores) -> list[EvalResult]:
    n = row.n_items or 0
    models = list(row.models)
    first = scores.get((row.id, models[0]), {}) if models else {}
    results = []
    for position, model in enumerate(models):
        tally = tallies.get((row.id, model), Tally())
        mine = scores.get((row.id, model), {})
        results.append(
            EvalResult(
                model=model,
                n=n,
                score=tally.score,
                errors=tally.errors,
                completed=tally.completed,
                interval=stats.interval(list(mine.values())),
                comparison=_comparison(models[0], first, mine) if position else None,
            )
        )
    return results


def _comparison(
    against: str, base: dict[int, float], other: dict[int, float]
) -> EvalResult.EvalComparison:
    found = stats.compare(base, other)
    return EvalResult.EvalComparison(
        against=against,
        n=found.n,
        improved=found.improved,
        regressed=found.regressed,
        unchanged=found.unchanged,
        improved_items=found.improved_items,
        regressed_items=found.regressed_items,
        difference=found.difference,
        interval=found.interval,
        significant=found.significant,
    )


def _view(row: Eval, tallies: dict[tuple[str, str], Tally], scores: Scores) -> EvalOut:
    error = EvalError(code=row.error_code, message=row.error_message) if row.error_code else None
    return EvalOut(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        name=row.name,
        dataset=row.dataset_id,
        grader=row.grader,
        grader_config=row.grader_config,
        models=list(row.models),
        provider=row.provider,
        job=row.job_id,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        completed_at=as_utc(row.completed_at),
        error=error,
        results=_results(row, tallies, scores),
    )


def job_eval(session: Session, job: JobRecord) -> JobEval | None:
    """The eval part of a job's API view (None when the job asked for none)."""
    if not job.eval_request:
        return None
    request = JobEvalRequest.model_validate(job.eval_request)
    row = session.get(Eval, job.eval_id) if job.eval_id else None
    if row is None:
        waiting = job.status not in ("succeeded", "failed", "cancelled")
        return JobEval(
            id=None,
            status="pending" if waiting else "skipped",
            grader=request.grader,
            dataset=request.dataset or job.validation_dataset_id,
            results=[],
        )
    return JobEval(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        grader=row.grader,
        dataset=row.dataset_id,
        results=_results(
            row, repository.tallies(session, [row.id]), repository.scores(session, [row.id])
        ),
    )


def item_lines(session: Session, team: Team, eval_id: str, model: str | None) -> Iterator[bytes]:
    """The items download: one JSON line per item and model, in item then model order."""
    row = get(session, team, eval_id)
    if model is not None and model not in row.models:
        raise Unprocessable(f"eval {eval_id} did not score model {model!r}", param="model")
    models = [model] if model is not None else list(row.models)
    answers = {(o.model, o.item_index): o for o in repository.outputs(session, row.id, model)}
    for item in repository.items(session, row.id):
        reference: str | list[str] = (
            item.reference[0] if len(item.reference) == 1 else list(item.reference)
        )
        for name in models:
            answer = answers.get((name, item.item_index))
            line = EvalItemOut(
                index=item.item_index,
                model=name,
                prompt=item.prompt,
                reference=reference,
                output=answer.output if answer else None,
                score=answer.score if answer else None,
                error=answer.error if answer else None,
                reason=answer.reason if answer else None,
            )
            yield line.model_dump_json().encode() + b"\n"


# -- running (the evals.run task) ---------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """What one run of an eval needs outside the transaction."""

    eval_id: str
    grader: str
    concurrency: int
    providers: dict[str, str]  # model -> provider name
    work: list[Work]
    references: dict[int, list[str]]
    grader_config: dict[str, Any] | None = None


def claim(session: Session, eval_id: str, token: str) -> bool:
    """Take the eval's lease (False: finished, gone, or another live run holds it)."""
    row = repository.lock(session, eval_id)
    now = utcnow()
    if row is None or row.status in TERMINAL_STATUSES:
        return False
    held = row.lease_token and row.lease_until and as_utc(row.lease_until) > now  # type: ignore[operator]
    if held and row.lease_token != token:
        return False
    row.lease_token = token
    row.lease_until = now + timedelta(seconds=get_settings().eval_lease_seconds)
    row.runs += 1
    if row.status == "queued":
        row.status, row.started_at = "running", now
    session.flush()
    return True


def plan(session: Session, eval_id: str) -> RunPlan | None:
    """Copy the dataset's items in (first run only) and list the answers still missing."""
    row = repository.lock(session, eval_id)
    if row is None or row.status in TERMINAL_STATUSES:
        return None
    if row.n_items is None and not _copy_items(session, row):
        return None
    done = repository.done_pairs(session, row.id)
    items = repository.items(session, row.id)
    work = [
        Work(item.item_index, model, list(item.messages))
        for item in items
        for model in row.models
        if (model, item.item_index) not in done
    ]
    return RunPlan(
        eval_id=row.id,
        grader=row.grader,
        concurrency=row.concurrency,
        providers={m: provider_for(m, row.provider) for m in row.models},
        work=work,
        references={item.item_index: list(item.reference) for item in items},
        grader_config=row.grader_config,
    )


def _copy_items(session: Session, row: Eval) -> bool:
    """Read the dataset's records into eval items; fail the eval when there are none."""
    limit = min(row.max_items or get_settings().eval_max_items, get_settings().eval_max_items)
    if retention.is_suite(row.dataset_id):  # ftq's own suite: a seeded sample, no Dataset row
        return _store_items(session, row, retention.sample(retention.load_suite().records, limit))
    dataset = session.get(Dataset, row.dataset_id)
    if dataset is None:
        fail(session, row, "dataset_missing", f"dataset {row.dataset_id} no longer exists")
        return False
    with get_blob_store().path(dataset.blob_key).open("rb") as handle:
        return _store_items(session, row, handle, limit)


def _store_items(
    session: Session, row: Eval, records: Iterable[bytes], limit: int | None = None
) -> bool:
    rows: list[dict[str, Any]] = []
    for raw in records:
        parsed = parse_record(raw)
        if parsed is None:
            continue
        messages, references = parsed
        rows.append(
            {
                "eval_id": row.id,
                "item_index": len(rows),
                "messages": messages,
                "reference": references,
                "prompt": last_user_text(messages),
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        message = f"no record of dataset {row.dataset_id} has a prompt and a reference answer"
        fail(session, row, "invalid_dataset", message)
        return False
    repository.add_items(session, rows)
    row.n_items = len(rows)
    session.flush()
    return True


def parse_record(raw: bytes) -> tuple[list[dict[str, Any]], list[str]] | None:
    """(prompt messages, accepted references) of a chat or evals record, or None."""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("messages"), list):
        return _from_chat(record["messages"])
    if "input" in record and "ideal" in record:
        return _from_evals(record["input"], record["ideal"])
    return None


def _from_chat(messages: list[Any]) -> tuple[list[dict[str, Any]], list[str]] | None:
    turns = [m for m in messages if isinstance(m, dict)]
    last = max((i for i, m in enumerate(turns) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        return None
    reference = text_of(turns[last].get("content"))
    if not reference:
        return None
    return [_clean(m) for m in turns[:last]], [reference]


def _from_evals(given: Any, ideal: Any) -> tuple[list[dict[str, Any]], list[str]] | None:
    if isinstance(given, str):
        messages = [{"role": "user", "content": given}]
    elif isinstance(given, list):
        messages = [_clean(m) for m in given if isinstance(m, dict)]
    else:
        return None
    ideals = ideal if isinstance(ideal, list) else [ideal]
    references = [str(i) for i in ideals if isinstance(i, str | int | float) and str(i).strip()]
    return (messages, references) if messages and references else None


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the chat API takes it (training-only keys such as `weight` dropped)."""
    return {k: message[k] for k in MESSAGE_KEYS if k in message}


def text_of(content: Any) -> str:
    """The text of a message content (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The last user turn's text (what a person reads as the question)."""
    users = [m for m in messages if m.get("role") == "user"]
    return text_of(users[-1].get("content")).strip() if users else ""


def record(
    session: Session,
    eval_id: str,
    token: str,
    answers: list[Answer],
    references: dict[int, list[str]],
    grader: str,
    grader_config: dict[str, Any] | None = None,
) -> bool:
    """Store graded answers and renew the lease; False when this run lost the eval."""
    row = repository.lock(session, eval_id)
    if row is None or row.status in TERMINAL_STATUSES or row.lease_token != token:
        return False
    done = repository.done_pairs(session, eval_id)
    rows = [
        {
            "eval_id": eval_id,
            "model": a.model,
            "item_index": a.index,
            "output": a.output,
            "score": _score(a, grader, references.get(a.index, []), grader_config),
            "error": a.error,
            "reason": a.reason,
            "attempts": a.attempts,
            "completed_at": utcnow(),
        }
        for a in answers
        if (a.model, a.index) not in done
    ]
    repository.add_outputs(session, rows)
    row.lease_until = utcnow() + timedelta(seconds=get_settings().eval_lease_seconds)
    row.updated_at = utcnow()
    session.flush()
    return True


def _score(
    answer: Answer, grader: str, references: list[str], config: dict[str, Any] | None
) -> float | None:
    """An answer's score: the judge's when judged, None on an error, else the grader's."""
    if answer.score is not None:
        return answer.score
    if answer.output is None or answer.error is not None or grader == "judge":
        return None
    return grade(grader, answer.output, references, config)


def hand_on(session: Session, eval_id: str, token: str) -> None:
    """Release the lease and queue the next run (a task's time budget ran out)."""
    row = repository.lock(session, eval_id)
    if row is None or row.status in TERMINAL_STATUSES or row.lease_token != token:
        return
    row.lease_token, row.lease_until = None, None
    enqueue(session, run_task(row), eval_id)


def finish(session: Session, eval_id: str, token: str) -> Eval | None:
    """Complete the eval (failed when no model answered any item); emit eval.completed once."""
    row = repository.lock(session, eval_id)
    if row is None or row.status in TERMINAL_STATUSES or row.lease_token != token:
        return None
    tallies = repository.tallies(session, [row.id])
    answered = sum(t.completed - t.errors for t in tallies.values())
    if answered == 0 and row.n_items:
        first = repository.first_error(session, row.id) or "no answers"
        fail(session, row, "provider_failed", f"no model answered any item: {first}")
        return row
    _finish(session, row, "completed")
    return row


def fail(session: Session, row: Eval, code: str, message: str) -> None:
    """Finish an eval as failed with a code and a message a person can act on."""
    row.error_code, row.error_message = code, message
    _finish(session, row, "failed")


def fail_by_id(
    session: Session, eval_id: str, code: str, message: str, token: str | None = None
) -> None:
    """Fail an unfinished eval; given a run's token, only while that run or no run holds it."""
    row = repository.lock(session, eval_id)
    if row is None or row.status in TERMINAL_STATUSES:
        return
    if token is not None and row.lease_token not in (None, token):
        return
    fail(session, row, code, message)


def _finish(session: Session, row: Eval, status: str) -> None:
    row.status, row.completed_at = status, utcnow()
    row.lease_token, row.lease_until = None, None
    session.flush()
    view = to_schema(session, row)
    job = session.get(Job, row.job_id) if row.job_id else None
    payload = eval_payload(view)
    if job is not None:
        _note_on_job(session, job, view)
    if job is not None and (job.retention or {}).get("eval_id") == row.id:
        payload["retention"] = _note_retention(session, job, row, view)
    elif job is not None:
        payload["best_checkpoint"] = _choose_checkpoint(session, job, view)
    webhooks.emit(session, row.team_id, "eval.completed", payload, job=job)


def _note_retention(session: Session, job: Job, row: Eval, view: EvalOut) -> dict[str, Any]:
    """Set the job's retention from its retention eval's per-item scores; say so on its timeline."""
    pending = {k: v for k, v in (job.retention or {}).items() if k in ("eval_id", "suite")}
    if view.status != "completed":
        job.retention = retention.failed(pending, (view.error and view.error.message) or "failed")
        lifecycle.add_event(session, job, f"Retention check {row.id} failed", level="warn")
        session.flush()
        return job.retention
    scores = repository.scores(session, [row.id])
    base, tuned = (scores.get((row.id, model), {}) for model in row.models[:2])
    found = retention.result(pending, base, tuned, get_settings().retention_warn_drop)
    job.retention = found
    if found["warning"]:
        lifecycle.add_event(session, job, f"Retention warning: {found['warning']}", level="warn")
    else:
        lifecycle.add_event(
            session,
            job,
            f"Retention on {found['items']} items: base {found['base_score']}, tuned "
            f"{found['tuned_score']} (delta {found['delta']}, 95% interval {found['interval']})",
        )
    session.flush()
    return found


def _choose_checkpoint(session: Session, job: Job, view: EvalOut) -> dict[str, Any] | None:
    """Set the job's best_checkpoint when its eval scored its checkpoints."""
    request = JobEvalRequest.model_validate(job.eval_request or {})
    if not request.checkpoints or view.status != "completed":
        return None
    job.best_checkpoint = pick_best(session, job, view)
    if job.best_checkpoint is not None:
        found = job.best_checkpoint
        lifecycle.add_event(
            session,
            job,
            f"Best checkpoint: {found['model']} at step {found['step']} "
            f"(score {found['score']:.3f})",
        )
    session.flush()
    return job.best_checkpoint


def _note_on_job(session: Session, job: Job, view: EvalOut) -> None:
    scores = ", ".join(
        f"{r.model} {'-' if r.score is None else f'{r.score:.3f}'}" for r in view.results
    )
    lifecycle.add_event(session, job, f"Eval {view.id} {view.status}: {scores}")


def eval_payload(view: EvalOut) -> dict[str, Any]:
    """The webhook payload of eval.completed."""
    return {
        "id": view.id,
        "object": "eval",
        "status": view.status,
        "dataset": view.dataset,
        "job": view.job,
        "models": view.models,
        "results": [r.model_dump() for r in view.results],
        "error": view.error.model_dump() if view.error else None,
    }


def requeue_stale(session: Session) -> list[str]:
    """Unfinished evals whose run died: touch them, queue them again and return their ids."""
    now = utcnow()
    quiet = now - timedelta(seconds=get_settings().eval_lease_seconds)
    rows = repository.stale(session, now=now, quiet_since=quiet)
    for row in rows:
        row.updated_at = now
        enqueue(session, run_task(row), row.id)
    session.flush()
    return [row.id for row in rows]
