"""Serving `local:` models with vLLM: one base loaded once (`enable_lora=True`), many LoRA adapters
served through `LoRARequest`s, each loaded on its first request and evicted least recently used
beyond FTQ_LOCAL_SERVING_MAX_ADAPTERS.

The registry is plain Python over an `Engine`; only `VllmEngine` imports vLLM, so the selection
logic runs (and is tested) without a GPU and bench/gpu_check.sh exercises the real engine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ftq.shared.providers.base import ChatResult
from ftq.shared.settings import get_settings

DEFAULT_MAX_TOKENS = 64


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter as vLLM knows it: a name, a unique integer id, its folder."""

    name: str
    id: int
    path: Path


class Engine(Protocol):
    """What the backend needs of an engine over one base model."""

    def add_adapter(self, adapter: Adapter) -> None:
        """Load an adapter's weights."""
        ...

    def remove_adapter(self, adapter: Adapter) -> None:
        """Free an adapter's weights."""
        ...

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        adapter: Adapter | None,
    ) -> ChatResult:
        """One reply, with the adapter on (None: the base alone)."""
        ...

    def close(self) -> None:
        """Free the base model."""
        ...


EngineFactory = Callable[[Path], Engine]


class AdapterCache:
    """Least-recently-used adapters by folder; ids are never reused (vLLM caches by id)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.loaded: OrderedDict[Path, Adapter] = OrderedDict()
        self.next_id = 1

    def get(self, name: str, path: Path) -> tuple[Adapter, bool, list[Adapter]]:
        """The adapter for `path`, whether it is new, and the adapters it pushed out."""
        if path in self.loaded:
            self.loaded.move_to_end(path)
            return self.loaded[path], False, []
        adapter = Adapter(name=name, id=self.next_id, path=path)
        self.next_id += 1
        self.loaded[path] = adapter
        evicted = []
        while len(self.loaded) > self.capacity:
            evicted.append(self.loaded.popitem(last=False)[1])
        return adapter, True, evicted

    def clear(self) -> None:
        """Forget every adapter (their base was closed)."""
        self.loaded.clear()


class VllmBackend:
    """One engine over the base in use; adapters loaded on demand into it."""

    name = "vllm"

    def __init__(self, open_engine: EngineFactory, max_adapters: int) -> None:
        self.open_engine = open_engine
        self.adapters = AdapterCache(max_adapters)
        self.base: Path | None = None
        self.engine: Engine | None = None
        self.lock = threading.Lock()

    def complete(
        self,
        base: Path,
        adapter: tuple[str, Path] | None,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None,
        temperature: float,
    ) -> ChatResult:
        """A reply from `base`, with the named adapter folder on when given."""
        with self.lock:
            engine = self._engine(base)
            lora = self._adapter(engine, *adapter) if adapter else None
            return engine.chat(
                messages,
                max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
                temperature=temperature,
                adapter=lora,
            )

    def _engine(self, base: Path) -> Engine:
        if self.engine is not None and self.base == base:
            return self.engine
        if self.engine is not None:  # one base per GPU: another one replaces it
            self.engine.close()
            self.adapters.clear()
        self.engine, self.base = self.open_engine(base), base
        return self.engine

    def _adapter(self, engine: Engine, name: str, path: Path) -> Adapter:
        adapter, new, evicted = self.adapters.get(name, path)
        for old in evicted:
            engine.remove_adapter(old)
        if new:
            engine.add_adapter(adapter)
        return adapter


class VllmEngine:
    """vLLM's `LLM` over one base folder with LoRA enabled."""

    def __init__(self, base: Path) -> None:
        from vllm import LLM

        settings = get_settings()
        self.llm: Any = LLM(
            model=str(base),
            enable_lora=True,
            max_loras=settings.local_serving_max_adapters,
            max_cpu_loras=settings.local_serving_max_adapters,
            max_lora_rank=settings.local_serving_max_lora_rank,
            gpu_memory_utilization=settings.local_serving_gpu_memory,
        )

    def add_adapter(self, adapter: Adapter) -> None:
        """Load the adapter now, so its first request does not pay for it."""
        self.llm.llm_engine.add_lora(_request(adapter))

    def remove_adapter(self, adapter: Adapter) -> None:
        """Drop the adapter from vLLM's caches."""
        self.llm.llm_engine.remove_lora(adapter.id)

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        adapter: Adapter | None,
    ) -> ChatResult:
        """One greedy (or sampled) reply through vLLM's chat template handling."""
        from vllm import SamplingParams

        sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature)
        lora = _request(adapter) if adapter else None
        (output,) = self.llm.chat(
            [{"role": m["role"], "content": m.get("content") or ""} for m in messages],
            sampling,
            lora_request=lora,
            use_tqdm=False,
        )
        reply = output.outputs[0]
        return ChatResult(
            text=reply.text.strip(),
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(reply.token_ids),
        )

    def close(self) -> None:
        """Let the GPU memory go with the engine."""
        del self.llm


def _request(adapter: Adapter) -> Any:
    from vllm.lora.request import LoRARequest

    return LoRARequest(adapter.name, adapter.id, str(adapter.path))
