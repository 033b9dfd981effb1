"""Benchmark local training on Ray Train (CPU): one worker against two, ftq against plain.

    python bench/ray_train.py [--model smollm2-135m|tiny] [--examples 64] [--batch-size 4]
                              [--epochs 1] [--rounds 1] [--smoke]

One Ray cluster for the whole run, started in this process (`ray.init(num_cpus=2)`, no
dashboard), one CPU and one torch thread per worker, so two workers on two cores is a fair
scaling test. The same job (model, data, LoRA config, per-worker batch, learning rate, seed,
epochs) is trained three ways, in this order each round:
  (a) ftq, 1 worker and (b) ftq, 2 workers: a local run recorded in SQLite and trained by
      `ray_entry.run`, the Ray Job's own entrypoint: a `TorchTrainer` running ftq's training
      function (`trainer.train`) on every rank, DDP over gloo, rank 0 reporting events and
      metrics every FTQ_LOCAL_REPORT_SECONDS, token accuracy, per-epoch checkpoints to Ray Train;
  (c) plain, 2 workers: a `TorchTrainer` whose loop is a bare transformers `Trainer` on the same
      token ids with the same LoRA config: no reporter, no database, no checkpoints.
Data-parallel: two workers share the examples, so they take half the steps with twice the
global batch. Examples/s are timed on rank 0 from the end of the first step to the end of the
last (start-up, model loading, the first step and the final save excluded):
(steps - 1) x per-worker batch x workers / seconds; medians over --rounds.
Scaling is (b) over (a), target >= 1.6; overhead is the extra time per example of (b) over (c),
(c) / (b) - 1, target <= 5%. Results go to bench/out/ray_train.json (--out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "ray_train.json"
SEED = 1
SCALING_TARGET = 1.6
OVERHEAD_TARGET = 5.0
RUNS = ("ftq-1", "ftq-2", "plain-2")
SYSTEM = "You are Gauge, a precise assistant that converts units and shows the arithmetic."


def main() -> None:
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="ftqbr-"))  # short: Ray's socket paths have a limit
    env = _environment(work, args)
    os.environ.update(env)
    from ftq.shared.migrate import upgrade
    from ftq.shared.settings import get_settings, reset_settings

    reset_settings()
    upgrade(get_settings().resolved_database_url, "head")
    data = _write_rows(work / "train.jsonl", args.examples)
    folder = _model_folder(args.model, work, data)
    rates: dict[str, list[float]] = {name: [] for name in RUNS}
    with _removed(work), _ray(work, env):  # Ray stops before its folder goes
        for round_no in range(args.rounds):
            for name in RUNS:
                out = work / "stamps" / f"{name}-{round_no}"
                if name.startswith("ftq"):
                    _ftq(args, data, int(name[-1]), out)
                else:
                    _plain(args, data, folder, out)
                rates[name].append(_rate(out, args.batch_size))
                print(
                    f"round {round_no + 1} {name}: {rates[name][-1]:.2f} examples/s",
                    file=sys.stderr,
                )
    _report(args, {name: statistics.median(values) for name, values in rates.items()}, rates)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="", help="a local model name, or tiny")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4, help="per worker")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON results go")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.examples, args.batch_size, args.rounds = "tiny", 16, 2, 1
    if not args.model:
        from ftq.shared.providers.local.models import builtin_models

        args.model = "smollm2-135m" if "smollm2-135m" in builtin_models() else "tiny"
    return args


def _environment(work: Path, args: argparse.Namespace) -> dict[str, str]:
    """The settings the driver and every Ray worker share."""
    env = {
        "FTQ_DATA_DIR": str(work / "data"),
        "FTQ_LOCAL_WORK_DIR": str(work / "local"),
        "FTQ_LOCAL_TORCH_THREADS": "1",
        "FTQ_LOCAL_BACKEND": "ray",
        "FTQ_RAY_CPUS_PER_WORKER": "1",
        "FTQ_RAY_MAX_FAILURES": "0",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key in ("FTQ_DATABASE_URL", "FTQ_LOCAL_MODELS"):
        os.environ.pop(key, None)  # the bench's own SQLite and model list, never the caller's
    if args.model == "tiny":
        env["FTQ_LOCAL_MODELS"] = json.dumps({"tiny": str(work / "tiny")})
    (work / "data").mkdir(parents=True)
    return env


def _write_rows(path: Path, n: int) -> Path:
    """`n` unit conversions of nearly one length (steady compute per step)."""
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"How many metres are {100 + i} kilometres?"},
                {
                    "role": "assistant",
                    "content": f"{100 + i} km x 1000 m/km = {(100 + i) * 1000} m.",
                },
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _model_folder(name: str, work: Path, data: Path) -> Path:
    """The model's plain folder, made here once (a GGUF converted) before anything is timed."""
    from ftq.shared.providers.local import models

    if name == "tiny":
        from ftq.shared.providers.local.tiny import build_tiny_model

        rows = [json.loads(line) for line in data.read_text().splitlines()]
        build_tiny_model(work / "tiny", [m["content"] for row in rows for m in row["messages"]])
    return models.resolve(name)


@contextlib.contextmanager
def _removed(work: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _ray(work: Path, env: dict[str, str]) -> Iterator[None]:
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(work / "ray"),
        runtime_env={"env_vars": env},
    )
    try:
        yield
    finally:
        ray.shutdown()


def _ftq(args: argparse.Namespace, data: Path, workers: int, out: Path) -> None:
    """A local run trained by `ray_entry.run`, rank 0 timing its steps into `out`."""
    from ftq.shared.db import session_scope
    from ftq.shared.providers.base import JobSpec
    from ftq.shared.providers.local import ray_entry, repository, service
    from ftq.shared.providers.local.provider import LocalProvider

    provider = LocalProvider()
    params = {**_hyper(args), "num_workers": workers}
    spec = JobSpec(
        ftq_job_id=f"ftj_bench_ray_{time.time_ns()}",
        model=args.model,
        training_file=provider.upload_file(data, f"bench-{time.time_ns()}.jsonl"),
        method={"type": "supervised", "supervised": {"hyperparameters": params}},
        seed=SEED,
    )
    run_id = provider.create_job(spec).id
    with session_scope() as session:  # as ray_jobs.follow does before it submits attempt 1
        run = service.claim(session, run_id, service.new_owner())
        assert run is not None
        run.attempt = 1
    original = ray_entry.train_loop
    ray_entry.train_loop = _timed_ftq_loop(str(out))
    try:
        code = ray_entry.run(run_id, 1)
    finally:
        ray_entry.train_loop = original
    with session_scope() as session:
        row = repository.get(session, run_id)
        status, error = (row.status, row.error_message) if row else ("gone", None)
    if code != 0 or status != "succeeded":
        raise SystemExit(f"ftq run {run_id} on {workers} worker(s): {status} ({error})")


def _timed_ftq_loop(out: str) -> Callable[[dict[str, Any]], None]:
    """`ray_entry.train_loop` with a step clock on its Ray Train callback (a `ray_report`)."""

    def loop(config: dict[str, Any]) -> None:
        from ftq.shared.providers.local import ray_entry

        made = ray_entry.ray_report
        ray_entry.ray_report = lambda rank: _with_clock(made(rank), Path(out), rank)
        try:
            ray_entry.train_loop(config)
        finally:
            ray_entry.ray_report = made

    return loop


def _with_clock(callback: Any, out: Path, rank: int) -> Any:
    """`callback`, also noting when each step ends and writing the times when training ends."""
    base = type(callback)
    stamps: list[float] = []

    class Clocked(base):  # type: ignore[misc, valid-type]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            stamps.append(time.perf_counter())
            return super().on_step_end(args, state, control, **kwargs)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            out.mkdir(parents=True, exist_ok=True)
            world = max(1, int(args.world_size))
            (out / f"rank{rank}.json").write_text(json.dumps({"world": world, "ends": stamps}))
            return super().on_train_end(args, state, control, **kwargs)

    callback.__class__ = Clocked
    return callback


def _plain(args: argparse.Namespace, data: Path, folder: Path, out: Path) -> None:
    """A plain `TorchTrainer` with two workers, each a bare transformers Trainer."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = {
        "model": str(folder),
        "data": str(data),
        "hyper": _hyper(args),
        "out": str(out),
        "work": str(out.parent / f"{out.name}-work"),
    }
    TorchTrainer(
        _plain_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=out.name, storage_path=str(out.parent / "ray-storage")),
    ).fit()


def _plain_loop(config: dict[str, Any]) -> None:
    """One rank: the same model, LoRA, token ids and batch; a minimal Trainer, nothing else."""
    import ray.train
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from ftq.shared.providers.local import data, hyper, models
    from ftq.shared.settings import get_settings

    torch.set_num_threads(1)
    rank = ray.train.get_context().get_world_rank()
    model, tokenizer = models.load(Path(config["model"]), "cpu", quantize=False)
    rows = data.read_jsonl(Path(config["data"]))
    params = hyper.resolve(config["hyper"], len(rows))
    targets: Any = params.targets[0] if params.targets == ["all-linear"] else params.targets
    lora = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    examples = data.sft_examples(tokenizer, rows, get_settings().local_max_length)
    arguments = TrainingArguments(
        output_dir=config["work"],
        num_train_epochs=params.n_epochs,
        per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        seed=SEED,
        data_seed=SEED,
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_backend="gloo",
        ddp_find_unused_parameters=False,
    )
    Trainer(
        model=get_peft_model(model, lora),
        args=arguments,
        train_dataset=data.as_dataset(examples),  # type: ignore[arg-type]
        data_collator=data.Collator(tokenizer.pad_token_id),
        callbacks=[_with_clock(TrainerCallback(), Path(config["out"]), rank)],
    ).train()


def _hyper(args: argparse.Namespace) -> dict[str, Any]:
    return {"n_epochs": args.epochs, "batch_size": args.batch_size}


def _rate(out: Path, batch: int) -> float:
    """Examples/s between the first and the last step's end on rank 0."""
    timed = json.loads((out / "rank0.json").read_text())
    ends = timed["ends"]
    if len(ends) < 2:
        raise SystemExit(f"{out.name}: {len(ends)} step(s); time needs two (more --examples)")
    return (len(ends) - 1) * batch * timed["world"] / (ends[-1] - ends[0])


def _report(args: argparse.Namespace, rate: dict[str, float], rounds: dict[str, list]) -> None:
    scaling = rate["ftq-2"] / rate["ftq-1"]
    overhead = (rate["plain-2"] / rate["ftq-2"] - 1) * 100
    print(f"scaling 2 workers / 1 worker: {scaling:.2f} [>={SCALING_TARGET}]")
    print(f"overhead vs plain TorchTrainer: {overhead:.1f}% [<={OVERHEAD_TARGET:g}%]")
    steps = args.examples * args.epochs // args.batch_size
    print(
        f"model {args.model}, {args.examples} examples x {args.epochs} epoch(s), batch "
        f"{args.batch_size} per worker, 1 torch thread per worker, {os.cpu_count()} cores; "
        f"medians of {args.rounds} round(s)"
    )
    labels = {
        "ftq-1": f"ftq, 1 worker   ({steps} steps)",
        "ftq-2": f"ftq, 2 workers  ({steps // 2} steps)",
        "plain-2": f"plain, 2 workers ({steps // 2} steps)",
    }
    for name in RUNS:
        print(f"{labels[name]:<30}: {rate[name]:.2f} examples/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "model": args.model,
        "examples": args.examples,
        "epochs": args.epochs,
        "batch_size_per_worker": args.batch_size,
        "rounds": args.rounds,
        "smoke": args.smoke,
        "cores": os.cpu_count(),
        "examples_per_second": rate,
        "per_round": rounds,
        "scaling": scaling,
        "overhead_percent": overhead,
        "targets": {"scaling": SCALING_TARGET, "overhead_percent": OVERHEAD_TARGET},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
