"""What a Together AI job of the emulator (a test double) produces: metrics and weight archives.

Metrics are the emulator's deterministic losses (plan.step_metrics) under Together's names
(`train/loss`, `train/learning_rate`, `train/global_step`, `train/epoch`; `eval/loss`,
`eval/global_step` at evaluation steps). A download is a small gzip tarball, identical for the
same job and checkpoint: `emulator.json` naming the job, step, kind and base model, plus a fake
weights file (`adapter_model.safetensors` + `adapter_config.json`, or `model.safetensors` +
`config.json`). No real weights: a test double.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import tarfile
from typing import Any

from ftq.services.emulator.plan import step_metrics
from ftq.services.emulator.together.job import TogetherJob

WEIGHT_BYTES = 4096


def learning_rate(job: TogetherJob, step: int) -> float:
    """The scheduled learning rate at `step`: linear warmup, then linear or cosine decay."""
    shown, total = job.request.shown, job.plan.total_steps
    peak, args = float(shown["learning_rate"]), shown["lr_scheduler"]["lr_scheduler_args"]
    warmup = round(float(shown["warmup_ratio"]) * total)
    if step <= warmup:
        return peak * step / max(warmup, 1)
    floor = peak * float(args["min_lr_ratio"])
    progress = (step - warmup) / max(total - warmup, 1)
    if shown["lr_scheduler"]["lr_scheduler_type"] == "cosine":
        wave = 0.5 * (1 + math.cos(math.pi * 2 * float(args["num_cycles"]) * progress))
        return floor + (peak - floor) * wave
    return peak - (peak - floor) * progress


def metrics(
    job: TogetherJob, step_from: int | None, step_to: int | None, resolution: int | None
) -> list[dict[str, float]]:
    """Recorded metrics in chronological order, filtered by step, train rows sampled."""
    done, total = job.steps_done(), job.plan.total_steps
    low, high = step_from or 0, min(done, step_to if step_to is not None else done)
    steps = [s for s in range(1, done + 1) if low <= s <= high]
    if resolution is not None and 0 < resolution < len(steps):
        steps = sorted(
            {steps[round(i * (len(steps) - 1) / max(resolution - 1, 1))] for i in range(resolution)}
        )
    rows: list[tuple[int, int, dict[str, float]]] = []
    for step in steps:
        loss = step_metrics(job.id, step, total, False)["train_loss"]
        row = {
            "train/loss": loss,
            "train/learning_rate": learning_rate(job, step),
            "train/global_step": float(step),
            "train/epoch": round(step / job.plan.steps_per_epoch, 6),
        }
        rows.append((step, 0, row))
    for step in job.eval_steps():
        if low <= step <= high:
            valid = step_metrics(job.id, step, total, True)["valid_loss"]
            rows.append((step, 1, {"eval/loss": valid, "eval/global_step": float(step)}))
    return [row for _, _, row in sorted(rows, key=lambda item: item[:2])]


def archive(job: TogetherJob, step: int, kind: str) -> bytes:
    """A deterministic `.tar.gz` standing for the weights of one checkpoint."""
    about = {
        "emulator": "ftq Together AI test double: no real weights",
        "job_id": job.id,
        "model": job.request.model.name,
        "model_output_name": job.model_name,
        "step": step,
        "checkpoint": kind,
        "training_type": job.request.shown["training_type"],
    }
    adapter = kind == "adapter"
    members = {
        "emulator.json": _json(about),
        "adapter_config.json" if adapter else "config.json": _json(_config(job, adapter)),
        "adapter_model.safetensors" if adapter else "model.safetensors": _weights(job, step, kind),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(job.created_real), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def _config(job: TogetherJob, adapter: bool) -> dict[str, Any]:
    """A config file in the spirit of PEFT's or transformers'."""
    if adapter:
        lora = job.request.shown["training_type"]
        return {
            "base_model_name_or_path": job.request.model.name,
            "peft_type": "LORA",
            "r": lora.get("lora_r"),
            "lora_alpha": lora.get("lora_alpha"),
            "lora_dropout": lora.get("lora_dropout"),
            "target_modules": lora.get("lora_trainable_modules"),
        }
    return {"_name_or_path": job.model_name, "base_model": job.request.model.name}


def _weights(job: TogetherJob, step: int, kind: str) -> bytes:
    """Pseudo-random bytes derived from the job, step and kind."""
    seed = f"{job.id}|{step}|{kind}".encode()
    blocks = (
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(WEIGHT_BYTES // 32)
    )
    return b"".join(blocks)


def _json(value: dict[str, Any]) -> bytes:
    """Stable JSON bytes."""
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"
