"""OpenAI's ids over ftq's: one to one, by swapping the prefix (`ds_X` is `file-X`)."""

from __future__ import annotations

from ftq.shared.errors import NotFound

FILE, DATASET = "file-", "ds_"
JOB, FTQ_JOB = "ftjob-", "ftj_"
EVENT = "ftevent-"
CHECKPOINT = "ftckpt_"


def file_id(dataset_id: str) -> str:
    """The `file-` id of a dataset."""
    return FILE + dataset_id.removeprefix(DATASET)


def dataset_id(file: str, param: str = "file_id") -> str:
    """The dataset behind a `file-` id (a 404 in OpenAI's words for anything else)."""
    if not file.startswith(FILE) or len(file) == len(FILE):
        raise NotFound(f"No such File object: {file}", param=param)
    return DATASET + file.removeprefix(FILE)


def job_id(ftq_job_id: str) -> str:
    """The `ftjob-` id of a job."""
    return JOB + ftq_job_id.removeprefix(FTQ_JOB)


def ftq_job_id(job: str) -> str:
    """The job behind an `ftjob-` id (a 404 in OpenAI's words for anything else)."""
    if not job.startswith(JOB) or len(job) == len(JOB):
        raise NotFound(f"Could not find fine tune: {job}", param="fine_tuning_job_id")
    return FTQ_JOB + job.removeprefix(JOB)


def event_id(event: int) -> str:
    """The `ftevent-` id of a job event."""
    return f"{EVENT}{event}"


def event_number(event: str | None) -> int | None:
    """The job event behind an `ftevent-` cursor (None for none or a foreign cursor)."""
    if not event or not event.startswith(EVENT):
        return None
    number = event.removeprefix(EVENT)
    return int(number) if number.isdigit() else None


def checkpoint_id(checkpoint: int) -> str:
    """The `ftckpt_` id of a job checkpoint."""
    return f"{CHECKPOINT}{checkpoint}"


def checkpoint_number(checkpoint: str | None) -> int | None:
    """The checkpoint row behind an `ftckpt_` cursor (None for none or a foreign cursor)."""
    if not checkpoint or not checkpoint.startswith(CHECKPOINT):
        return None
    number = checkpoint.removeprefix(CHECKPOINT)
    return int(number) if number.isdigit() else None
