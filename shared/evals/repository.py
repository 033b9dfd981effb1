"""Eval, eval item and eval output queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, or_, select
from sqlalchemy.orm import Session

from ftq.shared.models import Eval, EvalItem, EvalOutput
from ftq.shared.pagination import paginate


@dataclass(frozen=True)
class Tally:
    """What is known of one model in one eval."""

    completed: int = 0
    errors: int = 0
    score_sum: float = 0.0

    @property
    def score(self) -> float | None:
        """Mean score of the items the model answered (None before the first)."""
        answered = self.completed - self.errors
        return self.score_sum / answered if answered else None


def add(session: Session, row: Any) -> None:
    """Stage a row and flush."""
    session.add(row)
    session.flush()


def get_for_team(session: Session, team_id: str, eval_id: str) -> Eval | None:
    """A team's eval by id (another team's is None)."""
    return session.scalar(select(Eval).where(Eval.id == eval_id, Eval.team_id == team_id))


def lock(session: Session, eval_id: str) -> Eval | None:
    """An eval row locked for update."""
    return session.scalar(select(Eval).where(Eval.id == eval_id).with_for_update())


def list_for_team(
    session: Session, team_id: str, *, limit: int, after: str | None
) -> tuple[list[Eval], bool]:
    """A page of a team's evals, newest first."""
    query = select(Eval).where(Eval.team_id == team_id)
    return paginate(session, query, Eval.id, limit=limit, after=after)


def tallies(session: Session, eval_ids: Iterable[str]) -> dict[tuple[str, str], Tally]:
    """(eval id, model) -> outputs so far, errors and score sum, in one query."""
    ids = list(eval_ids)
    if not ids:
        return {}
    errored = case((EvalOutput.error.is_not(None), 1), else_=0)
    query = (
        select(
            EvalOutput.eval_id,
            EvalOutput.model,
            func.count(),
            func.sum(errored),
            func.sum(func.coalesce(EvalOutput.score, 0.0)),
        )
        .where(EvalOutput.eval_id.in_(ids))
        .group_by(EvalOutput.eval_id, EvalOutput.model)
    )
    return {
        (eval_id, model): Tally(int(n), int(errors or 0), float(total or 0.0))
        for eval_id, model, n, errors, total in session.execute(query)
    }


def scores(session: Session, eval_ids: Iterable[str]) -> dict[tuple[str, str], dict[int, float]]:
    """(eval id, model) -> item index -> score, of the items answered (errors left out)."""
    ids = list(eval_ids)
    found: dict[tuple[str, str], dict[int, float]] = {}
    if not ids:
        return found
    query = select(
        EvalOutput.eval_id, EvalOutput.model, EvalOutput.item_index, EvalOutput.score
    ).where(EvalOutput.eval_id.in_(ids), EvalOutput.error.is_(None), EvalOutput.score.is_not(None))
    for eval_id, model, index, score in session.execute(query):
        if score is not None:  # filtered in SQL too; the column is nullable
            found.setdefault((eval_id, model), {})[int(index)] = float(score)
    return found


def add_items(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert an eval's items in one statement."""
    if rows:
        session.execute(insert(EvalItem), rows)
        session.flush()


def items(session: Session, eval_id: str) -> list[EvalItem]:
    """An eval's items in dataset order."""
    query = select(EvalItem).where(EvalItem.eval_id == eval_id).order_by(EvalItem.item_index)
    return list(session.scalars(query))


def done_pairs(session: Session, eval_id: str) -> set[tuple[str, int]]:
    """(model, item index) pairs that already have an output."""
    query = select(EvalOutput.model, EvalOutput.item_index).where(EvalOutput.eval_id == eval_id)
    return {(model, index) for model, index in session.execute(query)}


def add_outputs(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert outputs in one statement (the caller left out pairs already written)."""
    if rows:
        session.execute(insert(EvalOutput), rows)
        session.flush()


def outputs(session: Session, eval_id: str, model: str | None) -> list[EvalOutput]:
    """An eval's outputs, of one model or all."""
    query = select(EvalOutput).where(EvalOutput.eval_id == eval_id)
    if model is not None:
        query = query.where(EvalOutput.model == model)
    return list(session.scalars(query))


def first_error(session: Session, eval_id: str) -> str | None:
    """One provider error of an eval, for its failure message."""
    query = (
        select(EvalOutput.error)
        .where(EvalOutput.eval_id == eval_id, EvalOutput.error.is_not(None))
        .order_by(EvalOutput.id)
        .limit(1)
    )
    return session.scalar(query)


def stale(session: Session, *, now: datetime, quiet_since: datetime) -> list[Eval]:
    """Unfinished evals nobody holds that have not moved lately, locked, skipping held rows."""
    query = (
        select(Eval)
        .where(
            Eval.status.in_(("queued", "running")),
            or_(Eval.lease_until.is_(None), Eval.lease_until < now),
            Eval.updated_at < quiet_since,
        )
        .order_by(Eval.id)
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))
