"""The jobs domain's hooks, where the evals domain above it connects (see ftq.shared.hooks)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ftq.shared.hooks import Hook
from ftq.shared.jobs.schemas import JobEval, JobEvalRequest
from ftq.shared.models import Job, JobRecord, Team

# A job request asks for an eval: a handler raises an AppError naming `eval.*` to refuse it.
eval_requested: Hook[[Session, Team, JobEvalRequest, bool], None] = Hook("jobs.eval_requested")
# A job just succeeded (locked, same transaction): the follow-up work it asked for starts.
succeeded: Hook[[Session, Job], None] = Hook("jobs.succeeded")
# The eval part of a job's API view; the first handler that answers is used.
eval_view: Hook[[Session, JobRecord], JobEval | None] = Hook("jobs.eval_view")
