"""The vLLM serving backend's adapter registry over a fake engine: one base loaded once for many
adapters, each adapter loaded on first use, the least recently used evicted, and the choice of
backend falling back to transformers without CUDA (the real engine runs in tests/gpu)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftq.shared.providers.base import ChatResult, ProviderRejected
from ftq.shared.providers.local import capabilities, inference
from ftq.shared.providers.local.capabilities import Cluster
from ftq.shared.providers.local.vllm_backend import Adapter, VllmBackend
from ftq.shared.settings import reset_settings

HELLO = [{"role": "user", "content": "hello"}]


class FakeEngine:
    """Records what the backend asks of vLLM."""

    opened: list[Path] = []

    def __init__(self, base: Path) -> None:
        self.base = base
        self.loads: list[int] = []
        self.removals: list[int] = []
        self.replies: list[int | None] = []
        self.closed = False
        FakeEngine.opened.append(base)

    def add_adapter(self, adapter: Adapter) -> None:
        self.loads.append(adapter.id)

    def remove_adapter(self, adapter: Adapter) -> None:
        self.removals.append(adapter.id)

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        adapter: Adapter | None,
    ) -> ChatResult:
        self.replies.append(adapter.id if adapter else None)
        name = adapter.name if adapter else "base"
        return ChatResult(text=f"{name} says hi", prompt_tokens=3, completion_tokens=max_tokens)

    def close(self) -> None:
        self.closed = True


def _ask(backend: VllmBackend, base: Path, adapter: str | None) -> ChatResult:
    named = (adapter, Path("/adapters") / adapter) if adapter else None
    return backend.complete(base, named, HELLO, max_tokens=4, temperature=0.0)


def test_one_base_serves_many_adapters_loaded_on_first_use_and_evicted_lru() -> None:
    FakeEngine.opened = []
    backend = VllmBackend(FakeEngine, max_adapters=2)
    base = Path("/models/smollm2")
    assert _ask(backend, base, "local:a").text == "local:a says hi"
    assert _ask(backend, base, "local:b").completion_tokens == 4
    assert _ask(backend, base, "local:a").text == "local:a says hi"
    assert _ask(backend, base, None).text == "base says hi"
    engine = backend.engine
    assert isinstance(engine, FakeEngine)
    assert FakeEngine.opened == [base], "the base is loaded once for every adapter"
    assert engine.loads == [1, 2], "each adapter loaded on its first request only"
    assert engine.replies == [1, 2, 1, None]

    _ask(backend, base, "local:c")  # a third adapter pushes out b, the least recently used
    assert engine.removals == [2]
    assert engine.loads == [1, 2, 3]
    _ask(backend, base, "local:b")  # back again: loaded anew under a fresh id (a was older)
    assert engine.removals == [2, 1]
    assert engine.loads == [1, 2, 3, 4]
    assert [a.name for a in backend.adapters.loaded.values()] == ["local:c", "local:b"]
    assert FakeEngine.opened == [base]


def test_another_base_replaces_the_loaded_one() -> None:
    FakeEngine.opened = []
    backend = VllmBackend(FakeEngine, max_adapters=4)
    _ask(backend, Path("/models/one"), "local:a")
    first = backend.engine
    _ask(backend, Path("/models/two"), "local:a")
    assert isinstance(first, FakeEngine) and first.closed
    assert FakeEngine.opened == [Path("/models/one"), Path("/models/two")]
    second = backend.engine
    assert isinstance(second, FakeEngine) and second.loads == [2]


@pytest.mark.parametrize(
    ("setting", "found", "chosen"),
    [
        ("auto", Cluster(cuda=False, bitsandbytes=False, vllm=True), "transformers"),
        ("auto", Cluster(cuda=True, bitsandbytes=True, vllm=False), "transformers"),
        ("auto", Cluster(cuda=True, bitsandbytes=True, vllm=True), "vllm"),
        ("transformers", Cluster(cuda=True, bitsandbytes=True, vllm=True), "transformers"),
        ("vllm", Cluster(cuda=True, bitsandbytes=False, vllm=True), "vllm"),
    ],
)
def test_the_backend_choice(setting: str, found: Cluster, chosen: str) -> None:
    assert inference.choose_backend(setting, found) == chosen


def test_forcing_vllm_without_cuda_says_why() -> None:
    with pytest.raises(ProviderRejected, match="needs a CUDA GPU and the vllm package"):
        inference.choose_backend("vllm", Cluster(cuda=False, bitsandbytes=False, vllm=True))


def test_this_cpu_machine_serves_with_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "detect", lambda: Cluster(False, False, True))
    inference.reset_backend()
    try:
        assert inference.backend().name == "transformers"
        monkeypatch.setattr(capabilities, "detect", lambda: Cluster(True, True, True))
        assert inference.backend().name == "transformers", "made once per process"
        inference.reset_backend()
        assert isinstance(inference.backend(), VllmBackend)
        monkeypatch.setenv("FTQ_LOCAL_SERVING_BACKEND", "transformers")
        reset_settings()
        inference.reset_backend()
        assert inference.backend().name == "transformers"
    finally:
        inference.reset_backend()
        reset_settings()
