"""The `local` provider: LoRA / QLoRA / DPO training with transformers, peft and trl on ftq's own
workers (one Celery task per job on the `gpu` queue), mirrored like any other provider.

Nothing here reaches a model hub: the offline switches are set before transformers is imported.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def go_offline() -> None:
    """Set the hub's offline switches (before transformers, datasets or trl are imported)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


go_offline()
