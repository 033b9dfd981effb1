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
# The libraries' own printing off: progress bars ("Loading weights", map) and their warnings; the
# CLI draws one progress display of its own and the worker logs through ftq's handlers.
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TQDM_DISABLE": "1",  # transformers' GGUF loader draws a plain tqdm bar
}


def go_offline() -> None:
    """Set the hub's offline and quiet switches (before transformers, datasets or trl load)."""
    for key, value in {**OFFLINE_ENV, **QUIET_ENV}.items():
        os.environ.setdefault(key, value)


def quiet_transformers() -> None:
    """transformers at ERROR through ftq's handlers (not its own stderr one), bars off."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.disable_progress_bar()


go_offline()
