"""GPU tests (run by bench/gpu_check.sh; the default run never collects this folder, see
pyproject's `norecursedirs`): a missing GPU, package or model is a failure here, never a skip,
except for the 2-GPU Ray test on a machine with one GPU or without Ray, which says so."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

FIGURES_ENV = "FTQ_GPU_FIGURES"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder carries the `gpu` marker."""
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.gpu)


def require_cuda(*packages: str) -> None:
    """Fail unless CUDA and these packages are here."""
    import torch

    if not torch.cuda.is_available():
        pytest.fail("the GPU tests need CUDA (run them with bench/gpu_check.sh on a GPU machine)")
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"the GPU tests need {', '.join(missing)} (bench/gpu_check.sh installs them)")


def report(name: str, value: float, unit: str) -> None:
    """One summary line per figure: printed, and kept for gpu_check.sh's summary."""
    line = f"gpu_check: {name}: {value:.2f} {unit}"
    print(line)
    target = os.environ.get(FIGURES_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
