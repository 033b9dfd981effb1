"""Evaluation tasks (queue evals).

- `evals.run(eval_id)`: take the eval's lease, copy its items in once, ask every model the items
  it has not answered yet (bounded pool, rate limit per provider, retries), store answers as they
  come, and finish: a rerun after a crash asks only what is missing. A run that reaches its time
  budget hands on to a fresh task, well inside Celery's time limit.
  With grader `judge`, each answer is then graded by the eval's judge model (same retries and
  rate limit, per the judge's provider) before it is stored.
- `evals.sweep` (beat): run again the unfinished evals whose lease lapsed (their worker died).
"""

from __future__ import annotations

import logging
import time
import uuid
from functools import partial

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.credentials import service as credentials
from ftq.shared.credentials.service import CredentialRevoked
from ftq.shared.db import session_scope
from ftq.shared.errors import AppError
from ftq.shared.evals import runner, service
from ftq.shared.providers.base import Provider
from ftq.shared.providers.registry import get_provider
from ftq.shared.settings import get_settings

log = logging.getLogger(__name__)


@celery_app.task(name="evals.run")
def run(eval_id: str) -> str | None:
    """Run (or continue) one eval; returns how this run ended."""
    token = uuid.uuid4().hex
    with session_scope() as session:
        if not service.claim(session, eval_id, token):
            return None
    try:
        outcome = _run_claimed(eval_id, token)
    except AppError as exc:  # e.g. a provider that is not configured on this worker
        _fail(eval_id, token, exc.code, exc.message)
        outcome = "failed"
    except Exception:
        log.exception("eval %s crashed", eval_id)
        _fail(eval_id, token, "internal_error", "the eval stopped on an unexpected error")
        outcome = "failed"
    relay_now()
    return outcome


@celery_app.task(name="evals.run_local")
def run_local(eval_id: str) -> str | None:
    """`evals.run` for evals asking `local` models, routed to the gpu queue."""
    return run(eval_id)


def _run_claimed(eval_id: str, token: str) -> str:
    settings = get_settings()
    with session_scope() as session:
        plan = service.plan(session, eval_id)
    if plan is None:
        return "finished"
    judge = (plan.grader_config or {}).get("judge") if plan.grader == "judge" else None
    names = set(plan.providers.values()) | ({judge["provider"]} if judge else set())
    try:
        providers = _providers_for(eval_id, names)
    except CredentialRevoked as exc:
        _fail(eval_id, token, "provider_unavailable", exc.message)
        return "failed"
    policy = runner.RetryPolicy(settings.eval_max_retries, settings.eval_max_backoff_seconds)

    def limiter(name: str) -> runner.RateLimiter:
        rate = settings.eval_provider_rps.get(name, settings.eval_requests_per_second)
        return runner.limiter_for(name, rate)

    def ask_one(work: runner.Work) -> runner.Answer:
        name = plan.providers[work.model]
        answer = runner.ask(
            providers[name],
            work,
            limiter=limiter(name),
            policy=policy,
            max_tokens=settings.eval_max_tokens,
        )
        if judge is None:
            return answer
        return runner.judged(
            providers[judge["provider"]],
            judge,
            answer,
            service.last_user_text(work.messages),
            plan.references.get(work.index, []),
            limiter=limiter(judge["provider"]),
            policy=policy,
        )

    finished = runner.run_all(
        plan.work,
        ask_one,
        concurrency=plan.concurrency,
        on_batch=partial(_store, eval_id, token, plan),
        deadline=time.monotonic() + settings.eval_task_budget_seconds,
    )
    with session_scope() as session:
        if finished:
            service.finish(session, eval_id, token)
        else:
            service.hand_on(session, eval_id, token)
    return "finished" if finished else "handed_on"


def _providers_for(eval_id: str, names: set[str]) -> dict[str, Provider]:
    """A client per provider, with the team's (or its job's) credential where it has one."""
    with session_scope() as session:
        keys = {name: credentials.for_eval(session, eval_id, name) for name in names}
    # Without a team credential, exactly the gateway's client (get_provider by name alone).
    return {
        name: get_provider(name) if key is None else get_provider(name, credential=key)
        for name, key in keys.items()
    }


def _store(eval_id: str, token: str, plan: service.RunPlan, answers: list[runner.Answer]) -> bool:
    with session_scope() as session:
        return service.record(
            session, eval_id, token, answers, plan.references, plan.grader, plan.grader_config
        )


def _fail(eval_id: str, token: str, code: str, message: str) -> None:
    with session_scope() as session:
        service.fail_by_id(session, eval_id, code, message, token=token)


@celery_app.task(name="evals.sweep")
def sweep() -> int:
    """Run again the evals whose worker died (lease lapsed, nothing stored lately)."""
    with session_scope() as session:
        stale = service.requeue_stale(session)
    relay_now()
    return len(stale)
