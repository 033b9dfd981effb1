"""A Ray Job's entrypoint: `python -m ftq.shared.providers.local.ray_entry RUN_ID ATTEMPT`.

Runs ftq's training function (`trainer.train`) under Ray Train: a `TorchTrainer` whose workers
form one DDP group (gloo on CPU, nccl on GPU; FSDP on request), checkpoints kept by Ray Train in
blob storage, a killed worker restarting the group from the last one (`FailureConfig`). Rank 0
alone reports events, metrics and checkpoints, as `ray:{run}-a{attempt}`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from ftq.shared.db import session_scope
from ftq.shared.providers.local import hyper, ray_jobs, repository, service
from ftq.shared.settings import get_settings

log = logging.getLogger(__name__)
KEEP_CHECKPOINTS = 3


def ray_report(rank: int) -> Any:
    """A Trainer callback handing each checkpoint to Ray Train, from every rank (a barrier).

    Ours rather than `RayTrainReportCallback`: it keeps the Trainer's `checkpoint-N` name in
    storage, so the path ftq records is the one Ray Train restores, and only rank 0 uploads.
    (Made here, not at import: the job's driver never loads transformers.)
    """
    import ray.train
    from transformers import TrainerCallback

    class RayReport(TrainerCallback):  # type: ignore[misc]
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            name = f"checkpoint-{state.global_step}"
            folder = Path(args.output_dir) / name
            checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if rank == 0 else None
            ray.train.report(
                {"step": state.global_step},
                checkpoint=checkpoint,
                checkpoint_dir_name=name,
                delete_local_checkpoint_after_upload=False,
            )

    return RayReport()


def train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the shared training function as rank N of the group."""
    import ray.train

    from ftq.shared.providers.local import trainer

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    with session_scope() as session:
        plan = trainer.plan_of(repository.get(session, config["run_id"]))
        saved = [c.path for c in repository.checkpoints(session, plan.run_id)]
    kept = Path(config["storage"]) / plan.run_id
    # Ray Train's latest, else the latest ftq recorded (a save Ray had not registered yet when a
    # worker died, or an attempt resubmitted without Ray's snapshot).
    restored = ray.train.get_checkpoint()
    saved = [path for path in saved if (Path(path) / "trainer_state.json").is_file()]
    place = trainer.Place(
        output=service.work_dir() / "ray" / config["sid"] / f"rank{rank}",
        resume=restored.path if restored else (saved[-1] if saved else None),
        rank=rank,
        world_size=world,
        stops_on_cancel=False,
        callbacks=(ray_report(rank),),
        gather=_gather if world > 1 else trainer.alone,
        kept=lambda folder: kept / folder.name,
    )
    reporter = trainer.Reporter(plan.run_id, config["owner"]) if rank == 0 else None
    if reporter is not None:
        reporter.start()
    try:
        trainer.train(plan, reporter, place)
    finally:
        if reporter is not None:
            reporter.close()


def _gather(value: Any) -> list[Any]:
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def run(run_id: str, attempt: int) -> int:
    """Train one attempt of a run under Ray Train; the process's exit status."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    owner = service.ray_owner(run_id, attempt)
    with session_scope() as session:
        row = repository.get(session, run_id)
        if row is None or row.status in service.TERMINAL or row.attempt != attempt:
            log.warning("Ray Job %s is not the run's current attempt; nothing to do", owner)
            return 0
        params = hyper.method_params(row.method)
    scale = hyper.scale(params)
    settings = get_settings()
    storage = ray_jobs.storage_path()
    fit = TorchTrainer(
        train_loop,
        train_loop_config={
            "run_id": run_id,
            "owner": owner,
            "sid": ray_jobs.submission_id(run_id, attempt),
            "storage": str(storage),
        },
        scaling_config=ScalingConfig(
            num_workers=scale.num_workers,
            use_gpu=scale.gpus_per_worker > 0,
            resources_per_worker={
                "CPU": settings.ray_cpus_per_worker,
                "GPU": float(scale.gpus_per_worker),
            },
        ),
        run_config=RunConfig(
            name=run_id,  # one name per run: a resubmitted attempt restores its checkpoints
            storage_path=str(storage),
            failure_config=FailureConfig(max_failures=settings.ray_max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
        ),
    )
    try:
        fit.fit()
    except Exception as exc:
        log.exception("Ray Job %s failed", owner)
        message = f"Training failed: {type(exc).__name__}: {exc}"[:2000]
        with session_scope() as session:
            row = repository.get(session, run_id)
            if row is not None and not row.cancel_requested:  # a cancel's stop is no failure
                service.stop(session, run_id, owner, "failed", message, "training_failed")
        return 1
    return 0


def main(argv: list[str]) -> int:
    """`ray_entry RUN_ID ATTEMPT`."""
    logging.basicConfig(level=logging.INFO)
    return run(argv[1], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
