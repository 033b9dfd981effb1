"""Benchmark the `local` provider's orchestration against a plain TRL trainer.

    python bench/local_train.py [--model tiny|smollm2-135m] [--examples 96] [--epochs 2]
                                [--rounds 3] [--threads 1]

Same run, same machine, same data and settings, alternating rounds:
  (a) ftq: a local run end to end through LocalProvider (SQLite, blob storage) and `local.train`'s
      code (`run_training`): events written every FTQ_LOCAL_REPORT_SECONDS, cancel checks,
      per-epoch checkpoints with optimizer state, token accuracy, artifacts stored;
  (b) plain TRL: `SFTTrainer` on the very same token ids (pre-tokenized by ftq's data builder),
      the same LoRA config, epochs, batch size, learning rate, seed and per-epoch checkpoints.
Tokens/s are trained tokens over the trainer's own `train_runtime`; the median round of each is
reported (other processes share this machine). The ratio is ftq over TRL; the target is >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ftq-bench-local-"))
    (work / "data").mkdir()
    os.environ.update(
        {
            "FTQ_DATA_DIR": str(work / "data"),
            "FTQ_LOCAL_TORCH_THREADS": str(args.threads),
            "FTQ_LOCAL_WORK_DIR": str(work / "local"),
        }
    )
    from ftq.shared.migrate import upgrade
    from ftq.shared.settings import get_settings

    upgrade(get_settings().resolved_database_url, "head")
    rows = _rows(args.examples)
    model = _model(args.model, work, rows)
    ftq_rates, trl_rates = [], []
    for round_no in range(args.rounds):
        trl_rates.append(_trl(model, rows, args, work / f"trl-{round_no}"))
        ftq_rates.append(_ftq(model, rows, args, work, round_no))
        print(
            f"round {round_no + 1}: ftq {ftq_rates[-1]:,.0f} tokens/s, "
            f"TRL {trl_rates[-1]:,.0f} tokens/s",
            flush=True,
        )
    mid_ftq, mid_trl = statistics.median(ftq_rates), statistics.median(trl_rates)
    print(f"model {args.model}, {args.examples} examples x {args.epochs} epochs, ", end="")
    print(f"batch {args.batch_size}, {args.threads} torch thread(s)")
    print(f"ftq local job : {mid_ftq:,.0f} tokens/s (median of {args.rounds})")
    print(f"plain TRL     : {mid_trl:,.0f} tokens/s (median of {args.rounds})")
    ratio = mid_ftq / mid_trl
    print(f"ratio ftq/TRL : {ratio:.3f}  (orchestration overhead {1 - ratio:+.1%}; target <= 5%)")


def _rows(n: int) -> list[dict[str, Any]]:
    """The local demo's support-ticket examples (services/cli/demo/tickets.py)."""
    import random

    from ftq.services.cli.demo.tickets import ticket

    rng = random.Random(8)
    return [ticket(rng) for _ in range(n)]


def _model(name: str, work: Path, rows: list[dict[str, Any]]) -> str:
    if name != "tiny":
        return name
    from ftq.shared.providers.local.tiny import build_tiny_model

    texts = [m["content"] for row in rows for m in row["messages"]]
    return str(build_tiny_model(work / "tiny", texts))


def _hyper(args: argparse.Namespace) -> dict[str, Any]:
    return {"n_epochs": args.epochs, "batch_size": args.batch_size}


def _ftq(model: str, rows: list[dict[str, Any]], args: Any, work: Path, round_no: int) -> float:
    from ftq.shared.providers.base import JobSpec
    from ftq.shared.providers.local.provider import LocalProvider
    from ftq.shared.providers.local.trainer import run_training

    provider = LocalProvider()
    path = work / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    spec = JobSpec(
        ftq_job_id=f"ftj_bench_{round_no}_{time.time_ns()}",
        model=model,
        training_file=provider.upload_file(path, "ftq-bench.jsonl"),
        method={"type": "supervised", "supervised": {"hyperparameters": _hyper(args)}},
        seed=1,
    )
    job = provider.create_job(spec)
    assert run_training(job.id) == "succeeded"
    done = [
        e.data for e in provider.events_after(job.id, None) if e.data and "train_runtime" in e.data
    ]
    return float(done[-1]["trained_tokens"]) / float(done[-1]["train_runtime"])


def _trl(model_name: str, rows: list[dict[str, Any]], args: Any, output: Path) -> float:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ftq.shared.providers.local import data, hyper, models, trainer

    torch.set_num_threads(args.threads)
    folder = models.resolve(model_name)
    model, tokenizer = models.load(folder, "cpu", quantize=False)
    examples = data.sft_examples(tokenizer, rows, 1024)
    params = hyper.resolve(_hyper(args), len(rows))
    config = SFTConfig(
        output_dir=str(output),
        num_train_epochs=params.n_epochs,
        per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        logging_steps=1,
        save_strategy="epoch",
        save_total_limit=3,
        report_to="none",
        seed=1,
        data_seed=1,
        use_cpu=True,
        # TRL defaults to bf16 and gradient checkpointing; ftq picks per device (neither on CPU).
        bf16=models.bf16_ok("cpu"),
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=1024,
    )
    sft = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list([{"input_ids": e.input_ids} for e in examples]),
        processing_class=tokenizer,
        peft_config=trainer._lora(params),
    )
    runtime = float(sft.train().metrics["train_runtime"])
    tokens = sum(len(e.input_ids) for e in examples) * params.n_epochs
    return tokens / runtime


if __name__ == "__main__":
    main()
