"""Evaluations: score models on a dataset, side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.downloads import attachment
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.evals import service
from ftq.shared.evals.schemas import Eval, EvalCreate
from ftq.shared.pagination import Page

router = APIRouter(prefix="/v1/evals", tags=["evals"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Eval)
def create_eval(
    data: EvalCreate, session: SessionDep, team: TeamDep, idempotency: IdempotencyDep
) -> Eval | Response:
    """Queue an eval of 1-5 models on a dataset with one grader."""
    if (replay := idempotency.begin(session, data)) is not None:
        return replay
    created = service.to_schema(session, service.create(session, team, data))
    idempotency.save(session, status.HTTP_201_CREATED, created)
    commit(session)
    return created


@router.get("", response_model=Page[Eval])
def list_evals(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[Eval]:
    """The team's evals, newest first."""
    rows, more = service.list_page(session, team, limit=limit, after=after)
    return Page(data=service.to_schemas(session, rows), has_more=more)


@router.get("/{eval_id}", response_model=Eval)
def read_eval(eval_id: str, session: SessionDep, team: TeamDep) -> Eval:
    """One eval with each model's n, score, errors and progress."""
    return service.to_schema(session, service.get(session, team, eval_id))


@router.get("/{eval_id}/items", response_class=Response)
def download_items(
    eval_id: str,
    session: SessionDep,
    team: TeamDep,
    model: Annotated[str | None, Query(description="only this model's answers")] = None,
) -> Response:
    """Every item and model as JSON lines: prompt, reference, output, score, error."""
    body = b"".join(service.item_lines(session, team, eval_id, model))
    return Response(
        body,
        media_type="application/x-ndjson",
        headers=attachment(f"{eval_id}-items.jsonl"),
    )
