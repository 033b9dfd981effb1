"""Connects the higher domains' handlers to the lower domains' hooks (see ftq.shared.hooks).

This is the one place a reader finds which work a lower domain's change starts in a higher one.
Every process entry point calls `install()` before it serves or consumes anything.
"""

from __future__ import annotations

from ftq.shared import hooks
from ftq.shared.datasets import hooks as datasets_hooks
from ftq.shared.evals import service as evals
from ftq.shared.jobs import hooks as jobs_hooks
from ftq.shared.jobs import service as jobs


def install() -> None:
    """Connect every handler (idempotent)."""
    # A dataset validated releases (or fails) the jobs that were waiting for it.
    datasets_hooks.validated.connect(jobs.on_dataset_validated)
    # A job's eval option is checked by the evals domain, which runs it once the job succeeds
    # and reports it on the job's view.
    jobs_hooks.eval_requested.connect(evals.check_job_request)
    jobs_hooks.succeeded.connect(evals.start_for_job)
    jobs_hooks.eval_view.connect(evals.job_eval)
    hooks.mark_installed()
