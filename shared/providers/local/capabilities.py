"""What the local training cluster can do (CUDA GPUs, bitsandbytes, vLLM) and what a run asks.

The API checks a job against the cluster before accepting it; the API pod itself usually has no
GPU, so FTQ_LOCAL_CUDA declares the cluster's GPUs (unset: the GPUs FTQ_RAY_ADDRESS's Ray cluster
reports, else whatever this process finds). Nothing here imports torch unless it is installed,
and then only once.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import Any

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.local import ray_cluster
from ftq.shared.settings import get_settings

QUANTIZATION_PARAM = "method.hyperparameters.quantization"
FOUR_BIT = "4bit"
NO_QUANTIZATION = "none"


@dataclass(frozen=True)
class Cluster:
    """What the training and serving hardware offers."""

    cuda: bool
    bitsandbytes: bool
    vllm: bool

    @property
    def qlora(self) -> bool:
        """4-bit QLoRA needs a CUDA GPU and bitsandbytes."""
        return self.cuda and self.bitsandbytes

    @property
    def serves_with_vllm(self) -> bool:
        """vLLM needs a CUDA GPU and the vllm package."""
        return self.cuda and self.vllm


@functools.cache
def detect() -> Cluster:
    """What this process finds (cached: CUDA does not come and go)."""
    return Cluster(
        cuda=_cuda_here(),
        bitsandbytes=_installed("bitsandbytes"),
        vllm=_installed("vllm"),
    )


def cluster() -> Cluster:
    """The cluster: as FTQ_LOCAL_CUDA says, else the GPUs Ray reports, else this machine."""
    settings = get_settings()
    declared = settings.local_cuda
    if declared is None and settings.local_backend == "ray" and settings.ray_address:
        view = ray_cluster.resources()
        declared = None if view is None else view.gpus > 0
    if declared is None:
        return detect()
    # A GPU cluster runs the GPU image, which carries bitsandbytes.
    return Cluster(cuda=declared, bitsandbytes=declared, vllm=declared and _installed("vllm"))


def requested_quantization(method: dict[str, Any]) -> str | None:
    """`quantization` of a method: ftq's `hyperparameters`, OpenAI's `<type>.hyperparameters`."""
    params = method.get("hyperparameters")
    if params is None:
        kind = method.get("type", "supervised")
        params = (method.get(kind) or {}).get("hyperparameters")
    value = (params or {}).get("quantization")
    return str(value) if value is not None else None


def check_job(model: str, method: dict[str, Any]) -> None:
    """Refuse (422 naming the field) a run this cluster can never train."""
    if requested_quantization(method) != FOUR_BIT:
        return
    found = cluster()
    if found.qlora:
        return
    missing = "none" if not found.cuda else "no bitsandbytes"
    raise Unprocessable(
        f"quantization 4bit needs a CUDA GPU and bitsandbytes; this cluster has {missing} "
        '(omit quantization or set it to "none" to train plain LoRA)',
        param=QUANTIZATION_PARAM,
        code="quantization_unavailable",
    )


@dataclass(frozen=True)
class Precision:
    """How one run loads and trains its base."""

    load_in_4bit: bool
    bf16: bool


def precision(params: dict[str, Any], device: str) -> Precision:
    """The trainer's choice for a run's hyperparameters on `device`.

    `quantization: "4bit"` is QLoRA (NF4, bf16 compute where the GPU has it) and fails loudly on a
    worker without CUDA and bitsandbytes; "none" is plain LoRA; unset follows
    FTQ_LOCAL_QUANTIZE_4BIT (4-bit wherever possible). bf16 mixed precision wherever CUDA has it.
    """
    here = device == "cuda" and _installed("bitsandbytes")
    choice = params.get("quantization")
    if choice == FOUR_BIT and not here:
        raise RuntimeError(
            f"quantization 4bit needs a CUDA GPU and bitsandbytes; this worker trains on {device}"
            + ("" if device != "cuda" else " without bitsandbytes")
        )
    if choice == FOUR_BIT:
        four_bit = True
    elif choice == NO_QUANTIZATION:
        four_bit = False
    else:
        four_bit = here and get_settings().local_quantize_4bit
    return Precision(load_in_4bit=four_bit, bf16=_bf16(device))


def _bf16(device: str) -> bool:
    if device != "cuda":
        return False
    import torch

    return bool(torch.cuda.is_bf16_supported())


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _cuda_here() -> bool:
    if not _installed("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())
