"""Together's objects in ftq's shapes, and ftq's request in Together's create arguments.

Statuses: Together's nine map onto ftq's provider vocabulary (`STATUSES`); the raw one stays in
`TogetherJob.raw_status` (part of the fingerprint, so a move from `running` to `compressing`
is noticed) and in each event's `data.together_type`.

Exactly once: Together keeps no metadata, so our job id rides in the job's `suffix` (at most
`SUFFIX_LIMIT` = 40 characters): `<team suffix, cut to 14>-ftj-<21 id characters>`, or the tag
alone. `job_id_in` reads it back from `suffix` or from the output model name, which carries it.

Events: Together's have no id; each gets `tev-` and a digest of its time, type, step and message
(or Together's own `hash`). Training metrics (`GET /v1/fine-tunes/{id}/metrics`, rows of
`train/*` and `eval/*` keys) become OpenAI-shaped `metrics` events with id `tm-<step>`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ftq.shared.providers.base import (
    METADATA_KEY,
    JobSpec,
    ProviderCheckpoint,
    ProviderEvent,
    ProviderJob,
)

STATUSES = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",
    "cancel_requested": "running",
    "cancelled": "cancelled",
    "error": "failed",
    "user_error": "failed",
    "completed": "succeeded",
}
TERMINAL = frozenset({"cancelled", "failed", "succeeded"})
SUFFIX_LIMIT = 40
_TAG = re.compile(r"ftj-[0-9a-z]{21}(?![0-9a-z])")
# Together's documented default learning rate, for every model; the multiplier scales it.
DEFAULT_LEARNING_RATE = 1e-5
# ftq's name -> Together's create argument, for settings both have.
RENAMED = {"lora_rank": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}
LORA_SETTINGS = frozenset({*RENAMED, "lora_target_modules"})
# Together-only options, passed to the SDK's create as they are.
PASSED = frozenset(
    {
        "n_checkpoints",
        "n_evals",
        "learning_rate",
        "warmup_ratio",
        "max_grad_norm",
        "weight_decay",
        "lora",
        "train_on_inputs",
        "from_checkpoint",
        "lr_scheduler_type",
        "min_lr_ratio",
        "scheduler_num_cycles",
        "packing",
        "max_seq_length",
        "gradient_accumulation_steps",
        "rpo_alpha",
        "simpo_gamma",
        "dpo_normalize_logratios_by_length",
        "train_vision",
    }
)
COMMON = frozenset({"n_epochs", "batch_size", "learning_rate_multiplier", "beta"})
HYPERPARAMETERS = COMMON | LORA_SETTINGS | PASSED
LEVELS = {"warning": "warn", "error": "error", "legacy_iwarning": "warn", "legacy_ierror": "error"}
EVENT_FIELDS = (
    "step",
    "total_steps",
    "checkpoint_path",
    "model_path",
    "token_count",
    "param_count",
    "wandb_url",
)
STEP_KEYS = ("train/global_step", "eval/global_step", "global_step", "step")
# Together's metric keys -> ftq's metric fields (OpenAI's names).
METRIC_KEYS = {
    "train/loss": "train_loss",
    "eval/loss": "valid_loss",
    "train/mean_token_accuracy": "train_mean_token_accuracy",
    "eval/mean_token_accuracy": "valid_mean_token_accuracy",
}
LOSSES = (("train_loss", "training loss"), ("valid_loss", "validation loss"))
CSV_HEADER = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
RESULT_SUFFIX = "-metrics"


@dataclass(frozen=True)
class TogetherJob(ProviderJob):
    """A Together job in ftq's vocabulary, with Together's own status kept."""

    raw_status: str = ""

    @property
    def fingerprint(self) -> str:
        """ftq's fingerprint and the raw status (compressing and uploading map to running)."""
        return f"{super().fingerprint}|{self.raw_status}"


# -- our id in the suffix -------------------------------------------------------------------------


def tag_of(ftq_job_id: str) -> str:
    """The tag our job id leaves in a Together suffix (`ftj_x` -> `ftj-x`)."""
    return ftq_job_id.replace("_", "-")


def suffix_for(ftq_job_id: str, suffix: str | None) -> str:
    """The team's suffix (cleaned, cut to fit) and our tag, within Together's 40 characters."""
    tag = tag_of(ftq_job_id)
    room = SUFFIX_LIMIT - len(tag) - 1
    own = re.sub(r"[^A-Za-z0-9-]+", "-", suffix or "").strip("-")[: max(room, 0)].strip("-")
    return f"{own}-{tag}" if own else tag


def job_id_in(*texts: str | None) -> str | None:
    """Our job id from the last tag in the first text that holds one (suffix, output name)."""
    for text in texts:
        found = _TAG.findall(text or "")
        if found:
            return str(found[-1]).replace("-", "_", 1)
    return None


# -- the create request ---------------------------------------------------------------------------


def create_arguments(spec: JobSpec, learning_rate: float = DEFAULT_LEARNING_RATE) -> dict[str, Any]:
    """The SDK's `fine_tuning.create` keyword arguments for a job spec."""
    kind = str((spec.method or {}).get("type") or "supervised")
    params = dict(((spec.method or {}).get(kind) or {}).get("hyperparameters") or {})
    arguments: dict[str, Any] = {
        "training_file": spec.training_file,
        "suffix": suffix_for(spec.ftq_job_id, spec.suffix),
        "training_method": "dpo" if kind == "dpo" else "sft",
    }
    checkpoint = params.pop("from_checkpoint", None)
    arguments["from_checkpoint" if checkpoint else "model"] = checkpoint or spec.model
    if spec.validation_file:
        arguments["validation_file"] = spec.validation_file
    if spec.seed is not None:
        arguments["random_seed"] = spec.seed
    arguments.update(_common(params, kind, learning_rate))
    arguments.update(_lora(params))
    arguments.update({name: value for name, value in params.items() if name in PASSED})
    if kind != "dpo":
        arguments.setdefault("train_on_inputs", "auto")
    return arguments


def _common(params: Mapping[str, Any], kind: str, learning_rate: float) -> dict[str, Any]:
    """Epochs, batch size, learning rate (the multiplier times the default) and DPO's beta."""
    found: dict[str, Any] = {"batch_size": "max"}
    if _given(params.get("n_epochs")):
        found["n_epochs"] = int(params["n_epochs"])
    if _given(params.get("batch_size")):
        found["batch_size"] = int(params["batch_size"])
    if _given(params.get("learning_rate_multiplier")):
        found["learning_rate"] = learning_rate * float(params["learning_rate_multiplier"])
    if kind == "dpo" and _given(params.get("beta")):
        found["dpo_beta"] = float(params["beta"])
    return found


def _lora(params: Mapping[str, Any]) -> dict[str, Any]:
    """LoRA settings by Together's names; any of them asks for LoRA (else Together drops them)."""
    found = {RENAMED[name]: params[name] for name in RENAMED if params.get(name) is not None}
    modules = params.get("lora_target_modules")
    if modules:
        found["lora_trainable_modules"] = ",".join(modules)
    if found and params.get("lora") is None:
        found["lora"] = True
    return found


def _given(value: Any) -> bool:
    return value is not None and value != "auto"


# -- jobs -----------------------------------------------------------------------------------------


def to_job(job: Any) -> TogetherJob:
    """An SDK job object (retrieve, list, create or cancel answer) reduced."""
    raw = str(getattr(job.status, "value", job.status))
    status = STATUSES.get(raw, raw)
    extra = getattr(job, "model_extra", None) or {}
    output = _field(job, "x_model_output_name", "output_name") or extra.get("model_output_name")
    ftq_job_id = job_id_in(_field(job, "suffix") or extra.get("suffix"), output)
    return TogetherJob(
        id=str(job.id),
        status=status,
        raw_status=raw,
        fine_tuned_model=output,
        trained_tokens=_field(job, "token_count"),
        error_code=raw if status == "failed" else None,
        error_message=_error_message(job, raw) if status == "failed" else None,
        result_files=(f"{job.id}{RESULT_SUFFIX}",) if status == "succeeded" else (),
        metadata={METADATA_KEY: ftq_job_id} if ftq_job_id else {},
        created_at=_unix(_field(job, "created_at")),
        finished_at=_unix(_field(job, "updated_at")) if status in TERMINAL else None,
    )


def _field(item: Any, *names: str) -> Any:
    """The first set attribute of an SDK object built without validation (absent ones raise)."""
    for name in names:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None


def _error_message(job: Any, raw: str) -> str:
    """The last error event's message (Together reports failures as events)."""
    errors = [
        str(_field(event, "message"))
        for event in _field(job, "events") or []
        if _field(event, "type") == "job_error" or _field(event, "level") == "error"
    ]
    return errors[-1] if errors else f"Together reported the job as {raw}"


def _unix(moment: Any) -> int | None:
    """Unix seconds of a datetime or an ISO-8601 string."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return None
    return int(moment.timestamp()) if isinstance(moment, datetime) else None


def newest_first(jobs: Iterable[TogetherJob]) -> list[TogetherJob]:
    """Jobs newest first (Together's list is one unordered page)."""
    return sorted(jobs, key=lambda job: (job.created_at or 0, job.id), reverse=True)


# -- events and metrics ---------------------------------------------------------------------------


def to_event(event: Any) -> ProviderEvent:
    """An SDK event as an ftq event: a stable id, ftq's level, Together's fields in `data`."""
    dumped = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind, message, when = (
        dumped.get("type"),
        str(dumped.get("message") or ""),
        dumped.get("created_at"),
    )
    data = {"together_type": str(kind), **{k: dumped[k] for k in EVENT_FIELDS if dumped.get(k)}}
    return ProviderEvent(
        id=str(dumped.get("hash") or _digest(when, kind, dumped.get("step"), message)),
        created_at=_unix(when) or 0,
        level=LEVELS.get(str(dumped.get("level") or "info"), "info"),
        message=message,
        type="message",
        data=data,
    )


def _digest(*parts: Any) -> str:
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return "tev-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def after_cursor(events: Sequence[ProviderEvent], cursor: str | None) -> list[ProviderEvent]:
    """The events after the cursor event; all of them when it is not one of these (stored ones
    are skipped by id on the way in)."""
    ids = [event.id for event in events]
    if cursor in ids:
        return list(events[ids.index(cursor) + 1 :])
    return list(events)


def metric_step(cursor: str | None) -> int | None:
    """The step a metrics cursor (`tm-<step>`) stands at."""
    if cursor and cursor.startswith("tm-") and cursor[3:].isdigit():
        return int(cursor[3:])
    return None


def metric_points(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Together's metric rows merged by step into ftq's fields (train and eval rows are apart)."""
    by_step: dict[int, dict[str, Any]] = {}
    for row in rows:
        step = next((row[key] for key in STEP_KEYS if _number(row.get(key))), None)
        if step is None:
            continue
        point = by_step.setdefault(int(step), {"step": int(step)})
        for key, field in METRIC_KEYS.items():
            if _number(row.get(key)):
                point[field] = float(row[key])
    return [by_step[step] for step in sorted(by_step)]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_event(point: Mapping[str, Any], total_steps: int | None) -> ProviderEvent:
    """One step's metrics as OpenAI's `metrics` event."""
    step = int(point["step"])
    data = {**point, **({"total_steps": total_steps} if total_steps else {})}
    of = f"/{total_steps}" if total_steps else ""
    shown = ", ".join(f"{label}={point[name]:.4f}" for name, label in LOSSES if name in point)
    return ProviderEvent(
        id=f"tm-{step}",
        created_at=0,
        level="info",
        message=f"Step {step}{of}: {shown or 'metrics'}",
        type="metrics",
        data=data,
    )


def total_steps(events: Iterable[ProviderEvent]) -> int | None:
    """The latest total step count an event announced."""
    counts = [e.data["total_steps"] for e in events if e.data and e.data.get("total_steps")]
    return int(counts[-1]) if counts else None


def result_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Together's metrics as OpenAI's result file: a CSV of step, losses and accuracies."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    fields = ("train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy")
    for point in metric_points(rows):
        writer.writerow([point["step"], *(point.get(name, "") for name in fields)])
    return out.getvalue().encode()


def result_job_id(file_id: str) -> str | None:
    """The job whose metrics a result file id (`<job>-metrics`) names."""
    return file_id.removesuffix(RESULT_SUFFIX) if file_id.endswith(RESULT_SUFFIX) else None


# -- checkpoints ----------------------------------------------------------------------------------


def to_checkpoint(
    item: Any, provider_job_id: str, metrics: Mapping[int, Mapping[str, Any]]
) -> ProviderCheckpoint:
    """An SDK checkpoint, named as Together's `from_checkpoint` takes it (`<job>:<step>`)."""
    step = int(item.step)
    kind = str(getattr(item, "checkpoint", None) or "model")
    name = getattr(item, "object_name", None) or f"{provider_job_id}:{step}"
    return ProviderCheckpoint(
        id=f"{provider_job_id}:{step}:{kind}",
        step_number=step,
        fine_tuned_model_checkpoint=str(name),
        metrics=dict(metrics.get(step, {})),
        created_at=_unix(item.created_at),
    )
