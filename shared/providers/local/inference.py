"""Chat completions from a base model or a `local:` fine-tuned model (base + adapter, or one of its
checkpoints): the one serving path of `/v1/chat/completions` and of evals.

Two backends: vLLM (vllm_backend.py: one base loaded, many adapters on demand) where CUDA and
vllm are present, transformers otherwise (an LRU of loaded models). FTQ_LOCAL_SERVING_BACKEND
forces one.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftq.shared.providers.local import go_offline

go_offline()

from ftq.shared.db import session_scope  # noqa: E402
from ftq.shared.providers.base import ChatResult, ProviderRejected  # noqa: E402
from ftq.shared.providers.local import capabilities, models, repository  # noqa: E402
from ftq.shared.providers.local.capabilities import Cluster  # noqa: E402
from ftq.shared.providers.local.vllm_backend import VllmBackend, VllmEngine  # noqa: E402
from ftq.shared.settings import get_settings  # noqa: E402
from ftq.shared.storage import get_blob_store  # noqa: E402

CACHE_SIZE = 2
CHECKPOINT_NAME = re.compile(r"^(?P<model>local:.+):ckpt-step-(?P<step>\d+)$")
DEFAULT_MAX_TOKENS = 64


@dataclass(frozen=True)
class Target:
    """What a model name serves: a base model, and the adapter on it (None: the base alone)."""

    name: str
    base: str
    adapter: Path | None = None
    tokenizer: Path | None = None


def complete(
    name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> ChatResult:
    """Generate one reply to `messages` with the model called `name`."""
    target = target_of(name)
    chosen = backend()
    if isinstance(chosen, TransformersBackend):
        return chosen.reply(target, messages, max_tokens=max_tokens, temperature=temperature)
    adapter = (target.name, target.adapter) if target.adapter else None
    return chosen.complete(
        models.resolve(target.base),
        adapter,
        messages,
        max_tokens=max_tokens,
        temperature=temperature,
    )


def stream(
    name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> Generator[str, None, ChatResult]:
    """The reply to `messages` piece by piece as it is generated; returns the whole result.

    transformers streams token by token; vLLM's offline engine answers whole, sent as one piece.
    The model is looked up before the first piece, so a bad name fails before anything is sent.
    """
    target = target_of(name)
    chosen = backend()
    if isinstance(chosen, TransformersBackend):
        return chosen.stream(target, messages, max_tokens=max_tokens, temperature=temperature)
    return _whole(complete(name, messages, max_tokens=max_tokens, temperature=temperature))


def _whole(result: ChatResult) -> Generator[str, None, ChatResult]:
    yield result.text
    return result


def target_of(name: str) -> Target:
    """The base and adapter behind a model name (a `local:` name is looked up in the runs)."""
    if not name.startswith("local:"):
        return Target(name=name, base=name)
    base, adapter, tokenizer = adapter_of(name)
    return Target(name=name, base=base, adapter=adapter, tokenizer=tokenizer)


def choose_backend(setting: str, found: Cluster) -> str:
    """The backend FTQ_LOCAL_SERVING_BACKEND means on this hardware: vllm or transformers."""
    if setting == "transformers":
        return "transformers"
    if setting == "vllm" and not found.serves_with_vllm:
        raise ProviderRejected(
            "FTQ_LOCAL_SERVING_BACKEND=vllm needs a CUDA GPU and the vllm package here",
            code="serving_unavailable",
        )
    return "vllm" if found.serves_with_vllm else "transformers"


_backend: TransformersBackend | VllmBackend | None = None
_backend_lock = threading.Lock()


def backend() -> TransformersBackend | VllmBackend:
    """The serving backend of this process, made on first use."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = _make_backend()
        return _backend


def _make_backend() -> TransformersBackend | VllmBackend:
    settings = get_settings()
    if choose_backend(settings.local_serving_backend, capabilities.detect()) == "vllm":
        return VllmBackend(VllmEngine, settings.local_serving_max_adapters)
    return TransformersBackend(CACHE_SIZE)


def reset_backend() -> None:
    """Forget the backend (tests; a changed FTQ_LOCAL_SERVING_BACKEND)."""
    global _backend
    with _backend_lock:
        _backend = None


class TransformersBackend:
    """transformers' generate on the picked device, the last few models kept loaded."""

    name = "transformers"

    def __init__(self, size: int) -> None:
        self.size = size
        self.cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def reply(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None,
        temperature: float,
    ) -> ChatResult:
        """A reply from a resolved target."""
        with self.lock:
            model, tokenizer = self._loaded(target)
            prompt, options = self._inputs(model, tokenizer, messages, max_tokens, temperature)
            output = _generate(model, prompt, options)
        width = prompt["input_ids"].shape[1]
        new = output[0][width:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return ChatResult(text=text.strip(), prompt_tokens=int(width), completion_tokens=len(new))

    def stream(
        self,
        target: Target,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None,
        temperature: float,
    ) -> Generator[str, None, ChatResult]:
        """A reply's text as generate produces it (transformers' TextIteratorStreamer, generate in
        a thread); the model stays locked until generate ends, even if the caller stops reading."""
        from transformers import TextIteratorStreamer

        with self.lock:
            model, tokenizer = self._loaded(target)
            prompt, options = self._inputs(model, tokenizer, messages, max_tokens, temperature)
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            output: list[Any] = []
            failed: list[BaseException] = []

            def run() -> None:
                try:
                    output.append(_generate(model, prompt, options, streamer))
                except BaseException as exc:  # handed to the reader, who would wait forever
                    failed.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="ftq-generate", daemon=True)
            worker.start()
            text: list[str] = []
            try:
                for piece in streamer:
                    piece = piece if text else piece.lstrip()  # as `reply` strips the reply
                    if piece:
                        text.append(piece)
                        yield piece
            finally:
                worker.join()
        if failed:
            raise failed[0]
        width = prompt["input_ids"].shape[1]
        produced = len(output[0][0]) - width if output else 0
        joined = "".join(text).strip()
        return ChatResult(text=joined, prompt_tokens=int(width), completion_tokens=produced)

    def _inputs(
        self,
        model: Any,
        tokenizer: Any,
        messages: list[dict[str, Any]],
        max_tokens: int | None,
        temperature: float,
    ) -> tuple[Any, dict[str, Any]]:
        """The tokenized prompt on the model's device and generate's options."""
        prompt = tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m.get("content") or ""} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        prompt = {k: v.to(model.device) for k, v in prompt.items()}
        sample = temperature > 0
        options: dict[str, Any] = {
            "do_sample": sample,
            "pad_token_id": tokenizer.pad_token_id,
            "max_new_tokens": max_tokens or DEFAULT_MAX_TOKENS,
        }
        if sample:
            options["temperature"] = temperature
        return prompt, options

    def _loaded(self, target: Target) -> tuple[Any, Any]:
        if target.name in self.cache:
            self.cache.move_to_end(target.name)
            return self.cache[target.name]
        pair = _load(target)
        self.cache[target.name] = pair
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return pair


def _generate(model: Any, prompt: Any, options: dict[str, Any], streamer: Any = None) -> Any:
    """generate without gradients (feeding `streamer` when given)."""
    import torch

    with torch.no_grad():
        return model.generate(**prompt, **options, **({"streamer": streamer} if streamer else {}))


def _load(target: Target) -> tuple[Any, Any]:
    device = models.pick_device()
    folder = models.resolve(target.base)
    if target.adapter is None:
        model, tokenizer = models.load(folder, device, quantize=False)
        return model.eval(), tokenizer
    from peft import PeftModel
    from transformers import AutoTokenizer

    model, _ = models.load(folder, device, quantize=False)
    tuned = PeftModel.from_pretrained(model, target.adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(target.tokenizer or target.adapter)
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
