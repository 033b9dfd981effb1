"""The demo's last step: a 3-trial sweep over n_epochs, its table printed with the winner."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ftq.services.cli.client import FtqClient
from ftq.services.cli.team.sweeps import sweep_table, wait_sweep

DEMO_EPOCHS = [1, 2, 3]
SWEEP_TIMEOUT = 300.0


def run_sweep(
    client: FtqClient, console: Console, job: dict[str, Any], grader: str
) -> dict[str, Any]:
    """Sweep n_epochs on the demo job's data, scored on its held-out split; the final sweep."""
    body = {
        "base": {
            "model": job["model"],
            "provider": job["provider"],
            "training_dataset": job["training_dataset"],
            "suffix": "sweep",
        },
        "search": {"type": "grid", "space": {"n_epochs": DEMO_EPOCHS}},
        "eval": {"grader": grader, "dataset": job["validation_dataset"]},
    }
    sweep = client.request("POST", "/v1/sweeps", json=body)
    console.print(f"sweep {sweep['id']}: {len(sweep['trials'])} trials over n_epochs {DEMO_EPOCHS}")
    final = wait_sweep(client, sweep["id"], SWEEP_TIMEOUT)
    console.print(sweep_table(final))
    console.print(f"sweep {final['status']}; winner {final.get('best_job_id') or '-'} (★)")
    return final
