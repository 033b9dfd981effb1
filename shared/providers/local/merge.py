"""A local job's LoRA adapter merged into its base (peft's `merge_and_unload`): full weights as
`model.safetensors` with the config and tokenizer, stored once under the adapter's `merged/`.

The merged folder appears by one rename of a finished scratch folder, so a second request (or
two at once) finds the stored one and never a half-written copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from ftq.shared.errors import NotFound
from ftq.shared.models import Job
from ftq.shared.providers.local import artifacts, repository
from ftq.shared.providers.local.artifacts import Artifact
from ftq.shared.storage import get_blob_store

MERGED = "merged"
WEIGHTS = "model.safetensors"
# One file however large the base: the download is one artifact, as the adapter's is.
MAX_SHARD_SIZE = "1000GB"


def merge(session: Session, job: Job) -> list[Artifact]:
    """The merged model's files, made on the first request (404 without an adapter)."""
    folder = merged_folder(session, job)
    if not (folder / WEIGHTS).is_file():
        _build(_base_of(session, job), folder.parent, folder)
    return _listing(folder)


def merged_artifact(session: Session, job: Job, name: str) -> Artifact:
    """One file of the merged model (404 before a merge, or for an unknown name)."""
    folder = merged_folder(session, job)
    for item in _listing(folder) if (folder / WEIGHTS).is_file() else []:
        if item.name == name:
            return item
    raise NotFound(
        f"job {job.id} has no merged artifact {name!r} (POST /v1/jobs/{job.id}/artifacts/merge "
        "makes them)",
        param="name",
    )


def merged_folder(session: Session, job: Job) -> Path:
    """Where a job's merged model lives (404 when the job has no adapter)."""
    adapter = artifacts.artifacts(session, job)
    if not any(item.name == "adapter_config.json" for item in adapter):
        raise NotFound(f"job {job.id} has no adapter to merge", param="id")
    return adapter[0].path.parent / MERGED


def _base_of(session: Session, job: Job) -> str:
    run = repository.get(session, job.provider_job_id or "")
    if run is None:
        raise NotFound(f"job {job.id} has no local run", param="id")
    return run.model


def _listing(folder: Path) -> list[Artifact]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return [Artifact(p.name, p.stat().st_size, p) for p in files]


def _build(base: str, adapter: Path, folder: Path) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer

    from ftq.shared.providers.local import models

    model, _ = models.load(models.resolve(base), "cpu", quantize=False)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    scratch = get_blob_store().scratch_path()
    merged.save_pretrained(scratch, max_shard_size=MAX_SHARD_SIZE)
    tokenizer.save_pretrained(scratch)
    template = adapter / "chat_template.jinja"
    if template.is_file() and not (scratch / template.name).exists():
        shutil.copyfile(template, scratch / template.name)
    try:
        os.rename(scratch, folder)
    except OSError:  # another request stored it meanwhile
        shutil.rmtree(scratch, ignore_errors=True)
