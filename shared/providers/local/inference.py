"""Chat completions from a base model or a `local:` fine-tuned model (base + adapter), cached."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ftq.shared.providers.local import go_offline

go_offline()

from ftq.shared.db import session_scope  # noqa: E402
from ftq.shared.providers.base import ChatResult, ProviderRejected  # noqa: E402
from ftq.shared.providers.local import models, repository  # noqa: E402
from ftq.shared.storage import get_blob_store  # noqa: E402

CACHE_SIZE = 2
CHECKPOINT_NAME = re.compile(r"^(?P<model>local:.+):ckpt-step-(?P<step>\d+)$")
DEFAULT_MAX_TOKENS = 64
_cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
_lock = threading.Lock()


def complete(
    name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> ChatResult:
    """Generate one reply to `messages` with the model called `name`."""
    import torch

    with _lock:
        model, tokenizer = _loaded(name)
        prompt = tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m.get("content") or ""} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        prompt = {k: v.to(model.device) for k, v in prompt.items()}
        sample = temperature > 0
        options: dict[str, Any] = {"do_sample": sample, "pad_token_id": tokenizer.pad_token_id}
        if sample:
            options["temperature"] = temperature
        with torch.no_grad():
            output = model.generate(
                **prompt, max_new_tokens=max_tokens or DEFAULT_MAX_TOKENS, **options
            )
    width = prompt["input_ids"].shape[1]
    new = output[0][width:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    return ChatResult(text=text.strip(), prompt_tokens=int(width), completion_tokens=len(new))


def _loaded(name: str) -> tuple[Any, Any]:
    if name in _cache:
        _cache.move_to_end(name)
        return _cache[name]
    pair = _load(name)
    _cache[name] = pair
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return pair


def _load(name: str) -> tuple[Any, Any]:
    device = models.pick_device()
    if not name.startswith("local:"):
        model, tokenizer = models.load(models.resolve(name), device, quantize=False)
        return model.eval(), tokenizer
    base, adapter, tokenizer_folder = adapter_of(name)
    from peft import PeftModel
    from transformers import AutoTokenizer

    model, _ = models.load(models.resolve(base), device, quantize=False)
    tuned = PeftModel.from_pretrained(model, adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tuned, tokenizer


def adapter_of(name: str) -> tuple[str, Path, Path]:
    """The base model, the adapter folder and the tokenizer folder of a fine-tuned model.

    A checkpoint (`<model>:ckpt-step-N`) is the Trainer's folder of that step, which holds the
    adapter but no tokenizer: the final model's stored tokenizer serves it.
    """
    match = CHECKPOINT_NAME.match(name)
    final = match.group("model") if match else name
    with session_scope() as session:
        run = repository.by_fine_tuned_model(session, final)
        if run is None or not run.artifact_prefix:
            raise ProviderRejected(f"no fine-tuned model {name!r}", code="model_not_found")
        stored = get_blob_store().path(run.artifact_prefix)
        if match is None:
            return run.model, stored, stored
        step = int(match.group("step"))
        kept = {c.step: Path(c.path) for c in repository.checkpoints(session, run.id)}
        if step not in kept or not kept[step].is_dir():
            raise ProviderRejected(f"no checkpoint {name!r}", code="model_not_found")
        return run.model, kept[step], stored
