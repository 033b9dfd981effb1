"""Train one local run: build the data in memory (packed on request), LoRA (or QLoRA, or an
earlier job's adapter) on the chosen device, report events, honour cancel, evaluate and
checkpoint per epoch or every `eval_steps`, stop early on validation loss, resume after a kill,
store the adapter (the best one when stopping early).

One code path for CPU and GPU: the device is picked here, bf16 only where supported, gradient
checkpointing on CUDA unless the job says, 4-bit only with CUDA and bitsandbytes, no
`device_map`. One function (`train`) for both backends: alone in the Celery task, or as one rank
of a Ray Train worker group (`ray_entry`), where the Trainer runs DDP (or FSDP) over the group's
process group and rank 0 alone reports.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftq.shared.providers.local import go_offline, quiet_transformers

go_offline()

from transformers import (  # noqa: E402
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402

from ftq.shared.db import session_scope  # noqa: E402
from ftq.shared.providers.local import (  # noqa: E402
    capabilities,
    data,
    hyper,
    models,
    repository,
    service,
)
from ftq.shared.providers.local.provider import file_path  # noqa: E402
from ftq.shared.providers.local.service import Event  # noqa: E402
from ftq.shared.settings import get_settings  # noqa: E402
from ftq.shared.storage import get_blob_store  # noqa: E402

quiet_transformers()
log = logging.getLogger(__name__)
DEFAULT_SEED = 42
CSV_FIELDS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


@dataclass(frozen=True)
class Plan:
    """What the task read from the run before training."""

    run_id: str
    model: str
    method: str
    params: dict[str, Any]
    training: Path
    validation: Path | None
    seed: int
    from_checkpoint: str | None = None  # an earlier job's adapter to continue (hyper.Reference)


def alone(value: Any) -> list[Any]:
    """One process's gather: its own value."""
    return [value]


@dataclass(frozen=True)
class Place:
    """Where one training process sits: alone in the task, or one rank of a Ray Train group."""

    output: Path
    resume: str | None
    rank: int = 0
    world_size: int = 1
    # Stopping on cancel is the task's own; on Ray the job is stopped on every rank at once.
    stops_on_cancel: bool = True
    callbacks: tuple[Any, ...] = ()
    gather: Callable[[Any], list[Any]] = alone  # every rank's value, on every rank
    kept: Callable[[Path], Path] = field(default=lambda folder: folder)  # where a save is kept


def plan_of(run: Any) -> Plan:
    """The plan of a run row."""
    return Plan(
        run_id=run.id,
        model=run.model,
        method=str(run.method.get("type", "supervised")),
        params=hyper.method_params(run.method),
        training=file_path(run.training_file),
        validation=file_path(run.validation_file) if run.validation_file else None,
        seed=run.seed if run.seed is not None else DEFAULT_SEED,
        from_checkpoint=hyper.method_params(run.method).get("from_checkpoint"),
    )


class Cancelled(Exception):
    """The run was cancelled or lost its lease while preparing."""


class Reporter(threading.Thread):
    """Writes buffered events and a heartbeat every few tenths of a second; reads cancel."""

    def __init__(self, run_id: str, owner: str) -> None:
        super().__init__(name=f"ftq-report-{run_id}", daemon=True)
        self.run_id, self.owner = run_id, owner
        self.buffer: list[Event] = []
        self.lock = threading.Lock()
        self.step, self.total = 0, None
        self.stop_now = threading.Event()
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.closed = threading.Event()

    def emit(self, event: Event) -> None:
        """Queue an event for the next write."""
        with self.lock:
            self.buffer.append(event)

    def run(self) -> None:
        while not self.closed.wait(get_settings().local_report_seconds):
            self.flush()

    def flush(self) -> None:
        """Write what is buffered now."""
        with self.lock:
            events, self.buffer = self.buffer, []
        try:
            with session_scope() as session:
                result = service.report(
                    session, self.run_id, self.owner, events, self.step, self.total
                )
        except Exception as exc:  # the database blinked: keep the events for the next write
            log.warning("report of %s failed: %s", self.run_id, exc)
            with self.lock:
                self.buffer[:0] = events
            return
        if result.cancel:
            self.cancelled.set()
        if result.lost:
            self.lost.set()
        if result.cancel or result.lost:
            self.stop_now.set()

    def close(self) -> None:
        """Stop the thread after a last write."""
        self.closed.set()
        if self.is_alive():
            self.join(timeout=30)
        self.flush()


class FtqCallback(TrainerCallback):
    """Metric events in OpenAI's shape, checkpoints, and stopping on cancel."""

    def __init__(
        self, reporter: Reporter, run_id: str, place: Place, accuracy: bool = True
    ) -> None:
        self.reporter, self.run_id, self.accuracy = reporter, run_id, accuracy
        self.place = place
        self.pending: dict[str, Any] | None = None
        self.last: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.reporter.total = state.max_steps

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        logs = logs or {}
        step, total = state.global_step, state.max_steps
        if "eval_loss" in logs:
            if self.pending is None or self.pending["step"] != step:
                self._send()
                self.pending = {"step": step, "total_steps": total}
            self.pending["valid_loss"] = float(logs["eval_loss"])
            if self.accuracy and "eval_mean_token_accuracy" in logs:
                self.pending["valid_mean_token_accuracy"] = float(logs["eval_mean_token_accuracy"])
        elif "loss" in logs:
            self._send()
            self.pending = {"step": step, "total_steps": total, "train_loss": float(logs["loss"])}
            if self.accuracy and "mean_token_accuracy" in logs:
                self.pending["train_mean_token_accuracy"] = float(logs["mean_token_accuracy"])

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._send()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.reporter.step = state.global_step
        if self.place.stops_on_cancel and self.reporter.stop_now.is_set():
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._send()
        step = state.global_step
        path = self.place.kept(Path(args.output_dir) / f"checkpoint-{step}")
        self.reporter.flush()
        with session_scope() as session:
            service.record_checkpoint(session, self.run_id, step, path, self.last)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._send()

    def _send(self) -> None:
        if self.pending is None:
            return
        point, self.pending = self.pending, None
        self.last = point
        message = f"Step {point['step']}/{point['total_steps']}: training loss=" + (
            f"{point['train_loss']:.4f}" if "train_loss" in point else "n/a"
        )
        if "valid_loss" in point:
            message += f", validation loss={point['valid_loss']:.4f}"
        self.reporter.emit(Event(message, type="metrics", data=point))


class FtqTrainer(Trainer):
    """transformers' Trainer that also measures mean token accuracy on trained tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = {True: [0, 0], False: [0, 0]}

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        labels = inputs["labels"][:, 1:]
        mask = labels != data.IGNORE
        guesses = outputs.logits[:, :-1].argmax(-1)
        counts = self.tally[bool(model.training)]
        counts[0] += int((guesses[mask] == labels[mask]).sum())
        counts[1] += int(mask.sum())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        training = "eval_loss" not in logs
        right, seen = self.tally[training]
        if seen:
            key = "mean_token_accuracy" if training else "eval_mean_token_accuracy"
            logs[key] = right / seen
        self.tally[training] = [0, 0]
        super().log(logs, start_time)


def run_training(run_id: str) -> str:
    """Train a run if this worker can take its lease; the outcome as a word."""
    owner = service.new_owner()
    with session_scope() as session:
        run = service.claim(session, run_id, owner)
        if run is None:
            return "skipped"
        plan = plan_of(run)
    reporter = Reporter(run_id, owner)
    reporter.start()
    output = service.run_dir(run_id)
    place = Place(output, get_last_checkpoint(str(output)) if output.is_dir() else None)
    try:
        outcome = train(plan, reporter, place)
    except Exception as exc:
        log.exception("local run %s failed", run_id)
        reporter.close()
        message = f"Training failed: {type(exc).__name__}: {exc}"[:2000]
        with session_scope() as session:
            service.stop(session, run_id, owner, "failed", message, "training_failed")
        return "failed"
    reporter.close()
    if outcome == "cancelled":
        with session_scope() as session:
            message = f"Job cancelled during training at step {reporter.step}"
            service.stop(session, run_id, owner, "cancelled", message, "cancelled")
    return outcome


def train(plan: Plan, reporter: Reporter | None, place: Place) -> str:
    """Train `plan` where `place` says; `reporter` on the rank that reports (None elsewhere)."""
    settings = get_settings()
    device = models.pick_device()
    quantize = capabilities.precision(plan.params, device).load_in_4bit
    folder = models.resolve(plan.model)
    model, tokenizer = models.load(folder, device, quantize)
    rows = data.read_jsonl(plan.training)
    valid_rows = data.read_jsonl(plan.validation) if plan.validation else []
    dpo = plan.method == "dpo" or data.is_preference(rows)
    params = hyper.resolve(plan.params, len(rows))
    scale = hyper.scale(plan.params)
    world = {"world_size": place.world_size, "fsdp": scale.fsdp and place.world_size > 1}
    _emit(reporter, params.describe(), {"device": device, "load_in_4bit": quantize, **world})
    args = _arguments(place, params, device, plan.seed, bool(valid_rows), dpo, scale.fsdp)
    lora = _lora(params)
    parent = _parent(plan, reporter)
    if dpo:
        trainer, tokens = _dpo_trainer(
            model, tokenizer, rows, valid_rows, args, lora, quantize, parent
        )
    else:
        model = _peft(model, lora, quantize, args.gradient_checkpointing, parent)
        train_set = data.sft_examples(tokenizer, rows, settings.local_max_length)
        valid = data.sft_examples(tokenizer, valid_rows, settings.local_max_length)
        tokens = sum(len(e.input_ids) for e in train_set) * params.n_epochs
        if params.packing:
            packed = data.pack(train_set, settings.local_max_length)
            message = f"Packed {len(train_set)} examples into {len(packed)} blocks"
            _emit(reporter, f"{message} of at most {settings.local_max_length} tokens", {})
            train_set = packed
        trainer = FtqTrainer(
            model=model,
            args=args,
            train_dataset=data.as_dataset(train_set),  # type: ignore[arg-type]
            eval_dataset=data.as_dataset(valid) if valid else None,  # type: ignore[arg-type]
            data_collator=data.Collator(tokenizer.pad_token_id),
        )
    stopper = _stopper(params) if valid_rows else None
    for callback in (*place.callbacks, stopper):  # before ftq's: a save is kept, then recorded
        if callback is not None:
            trainer.add_callback(callback)
    if reporter is not None:
        trainer.add_callback(FtqCallback(reporter, plan.run_id, place, accuracy=not dpo))
    # With disable_tqdm the Trainer prints every log dict to stdout; FtqCallback reports them.
    trainer.remove_callback(PrinterCallback)
    if reporter is not None and place.stops_on_cancel and reporter.stop_now.is_set():
        return "cancelled" if reporter.cancelled.is_set() else "lost"
    last = place.resume
    where = f"resuming from checkpoint at step {last.rsplit('-', 1)[1]}" if last else "from step 0"
    pids = place.gather(os.getpid())
    _emit(reporter, f"Training started on {device} ({where})", {**world, "pids": pids})
    output = trainer.train(resume_from_checkpoint=last)
    ranks = place.gather({"steps": trainer.state.global_step, "adapter": adapter_digest(trainer)})
    if reporter is None:
        return "trained"
    if stopper is not None:
        _report_stop(reporter, trainer.state, stopper)
    runtime = float(output.metrics.get("train_runtime", 0.0))
    done = {"train_runtime": runtime, "trained_tokens": tokens, "step": reporter.step}
    _emit(reporter, f"Training finished in {runtime:.1f} s", {**done, **world, "ranks": ranks})
    if reporter.lost.is_set():
        return "lost"
    if place.stops_on_cancel and reporter.cancelled.is_set():
        return "cancelled"
    _store(plan, reporter, trainer, tokenizer, tokens)
    return "succeeded"


def _emit(reporter: Reporter | None, message: str, data: dict[str, Any]) -> None:
    if reporter is not None:
        reporter.emit(Event(message, data=data))


def _parent(plan: Plan, reporter: Reporter | None) -> Path | None:
    """The adapter folder `from_checkpoint` names (checked at create; gone since: a failure)."""
    if not plan.from_checkpoint:
        return None
    ref = hyper.parse_reference(plan.from_checkpoint)
    with session_scope() as session:
        run = hyper.parent_run(session, ref)
        folder = hyper.parent_adapter(session, run, ref.step) if run else None
    if folder is None:
        raise RuntimeError(f"from_checkpoint {plan.from_checkpoint}: its adapter is gone")
    _emit(reporter, f"Continuing from the adapter of {plan.from_checkpoint}", {})
    return folder


def _stopper(params: hyper.Hyper) -> EarlyStoppingCallback | None:
    if not params.patience:
        return None
    return EarlyStoppingCallback(
        early_stopping_patience=params.patience, early_stopping_threshold=params.min_delta
    )


def _report_stop(reporter: Reporter | None, state: Any, stopper: EarlyStoppingCallback) -> None:
    """The early-stopping event, when the callback (not the last step) ended training."""
    patience = stopper.early_stopping_patience
    if stopper.early_stopping_patience_counter < patience or state.global_step >= state.max_steps:
        return
    best = state.best_model_checkpoint
    best_step = int(best.rsplit("-", 1)[1]) if best else None
    _emit(
        reporter,
        f"Early stopping at step {state.global_step}: validation loss did not improve by "
        f"{stopper.early_stopping_threshold:g} for {patience} evaluations; keeping the adapter "
        f"of step {best_step} (validation loss {state.best_metric:.4f})",
        {"step": state.global_step, "best_step": best_step, "best_valid_loss": state.best_metric},
    )


def adapter_digest(trainer: Any) -> str:
    """A digest of the trained (LoRA) weights, equal on every rank of a DDP group."""
    digest = hashlib.sha256()
    for name, param in sorted(trainer.model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _arguments(
    place: Place,
    params: hyper.Hyper,
    device: str,
    seed: int,
    validate: bool,
    dpo: bool,
    fsdp: bool,
) -> Any:
    options: dict[str, Any] = {
        "output_dir": str(place.output),
        "num_train_epochs": params.n_epochs,
        "per_device_train_batch_size": params.batch_size,
        "per_device_eval_batch_size": params.batch_size,
        "learning_rate": params.learning_rate,
        "logging_steps": 1,
        # Saves follow the evaluations (every epoch, or every eval_steps): the best checkpoint
        # early stopping keeps is one that was scored.
        "save_strategy": "steps" if params.eval_steps else "epoch",
        "save_total_limit": 3,
        "eval_strategy": ("steps" if params.eval_steps else "epoch") if validate else "no",
        "report_to": "none",
        "seed": seed,
        "data_seed": seed,
        "bf16": models.bf16_ok(device),
        "use_cpu": device == "cpu",
        "remove_unused_columns": False,
        "disable_tqdm": True,
        "log_level": "error",
        "log_level_replica": "error",
        "dataloader_num_workers": 0,
    }
    if params.eval_steps:
        options["save_steps"] = options["eval_steps"] = params.eval_steps
    # Set both always: TRL's configs default to bf16 and gradient checkpointing, even on CPU.
    checkpointing = params.gradient_checkpointing
    options["gradient_checkpointing"] = device == "cuda" if checkpointing is None else checkpointing
    if params.patience and validate:
        # EarlyStoppingCallback reads the best eval_loss; the best adapter is the one stored.
        options["load_best_model_at_end"] = True
        options["metric_for_best_model"] = "eval_loss"
        options["greater_is_better"] = False
    if place.world_size > 1:
        # Every LoRA weight gets a gradient: DDP need not search the graph for unused ones.
        options["ddp_find_unused_parameters"] = False
        options["ddp_backend"] = "nccl" if device == "cuda" else "gloo"
        if fsdp:
            options["fsdp"] = "full_shard auto_wrap"
            options["fsdp_config"] = {"use_orig_params": True}
    if dpo:
        from trl import DPOConfig

        return DPOConfig(beta=params.beta, max_length=get_settings().local_max_length, **options)
    return TrainingArguments(**options)


def _lora(params: hyper.Hyper) -> Any:
    from peft import LoraConfig

    targets: Any = params.targets[0] if params.targets == ["all-linear"] else params.targets
    return LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def _peft(model: Any, lora: Any, quantize: bool, checkpointing: bool, parent: Path | None) -> Any:
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if quantize:
        model = prepare_model_for_kbit_training(model)
    elif checkpointing:
        model.enable_input_require_grads()  # gradient checkpointing needs grads at the inputs
    if parent is not None:  # the earlier adapter, trained on (its LoRA shape, not `lora`'s)
        return PeftModel.from_pretrained(model, str(parent), is_trainable=True)
    return get_peft_model(model, lora)


def _dpo_trainer(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    valid_rows: list[dict[str, Any]],
    args: Any,
    lora: Any,
    quantize: bool,
    parent: Path | None,
) -> tuple[Any, int]:
    from datasets import Dataset
    from peft import PeftModel, prepare_model_for_kbit_training
    from trl import DPOTrainer

    if quantize:
        model = prepare_model_for_kbit_training(model)
    if parent is not None:
        model, lora = PeftModel.from_pretrained(model, str(parent), is_trainable=True), None
    train, valid = data.dpo_rows(rows), data.dpo_rows(valid_rows)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(valid) if valid else None,
        processing_class=tokenizer,
        peft_config=lora,
    )
    text = " ".join(m["content"] for row in train for part in row.values() for m in part)
    return trainer, len(tokenizer(text)["input_ids"]) * int(args.num_train_epochs)


def _store(plan: Plan, reporter: Reporter, trainer: Any, tokenizer: Any, tokens: int) -> None:
    """Adapter, its config, tokenizer and chat template into blob storage; then succeed."""
    final = service.run_dir(plan.run_id) / "final"
    trainer.model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    if tokenizer.chat_template and not (final / "chat_template.jinja").exists():
        (final / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    store = get_blob_store()
    prefix = f"local/artifacts/{plan.run_id}"
    for path in sorted(final.iterdir()):
        if path.is_file():
            store.write_bytes(f"{prefix}/{path.name}", path.read_bytes())
    result_key = f"local/results/{plan.run_id}.csv"
    reporter.flush()
    with session_scope() as session:
        store.write_bytes(result_key, metrics_csv(session, plan.run_id))
        service.succeed(
            session,
            plan.run_id,
            reporter.owner,
            tokens=tokens,
            prefix=prefix,
            result_key=result_key,
        )


def metrics_csv(session: Any, run_id: str) -> bytes:
    """The run's metrics as OpenAI's result CSV (one row per step)."""
    rows: dict[int, dict[str, Any]] = {}
    for event in repository.events_after(session, run_id, 0):
        if event.type == "metrics" and event.data:
            point = event.data
            rows.setdefault(int(point["step"]), point)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for step in sorted(rows):
        point = rows[step]
        writer.writerow(
            [
                step,
                point.get("train_loss", ""),
                point.get("train_mean_token_accuracy", ""),
                point.get("valid_loss", ""),
                point.get("valid_mean_token_accuracy", ""),
            ]
        )
    return out.getvalue().encode()
