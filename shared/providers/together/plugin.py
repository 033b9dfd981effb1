"""The `together` plugin: what the provider can do, what it needs, and its SDK client.

Settings: `FTQ_TOGETHER_API_KEY` (or `TOGETHER_API_KEY`) and `FTQ_TOGETHER_BASE_URL` (the SDK's
default is Together's API). A base URL alone is enough for the emulator
(`http://host:port/emulator/together` in embedded mode): it takes any key. A team's credential
(api_key, base_url) replaces both. The SDK is imported on `build`, so the light client, which has
no `together` package, can still list the plugins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftq.shared import catalog
from ftq.shared.errors import AppError, Unprocessable
from ftq.shared.providers.plugins import COMMON_HYPERPARAMETERS, Capabilities, Credential
from ftq.shared.providers.together.mapping import HYPERPARAMETERS

if TYPE_CHECKING:
    from ftq.shared.providers.base import Provider
    from ftq.shared.settings import Settings

SDK_MAX_RETRIES = 0  # ftq retries (honouring retry-after); the SDK would re-POST a create
SDK_TIMEOUT = 60.0
ENV_KEY = "TOGETHER_API_KEY"
# Sent when only a base URL is set: the emulator takes any key, and Together refuses it (401).
NO_KEY = "ftq-no-key"

TOGETHER_CAPABILITIES = Capabilities(
    methods=("supervised", "dpo"),
    tuning=("lora", "full"),
    checkpoints=True,
    hyperparameters=COMMON_HYPERPARAMETERS | HYPERPARAMETERS,
    credential_fields=("api_key", "base_url"),
    limits="Together's per-model limits (batch size, epochs, learning rate); suffix cut to 14 "
    "characters",
    models=tuple(info.name for info in catalog.TOGETHER_MODELS),
)


@dataclass(frozen=True)
class TogetherPlugin:
    """Together AI's fine-tuning API through the official `together` SDK."""

    name: str = "together"
    capabilities: Capabilities = TOGETHER_CAPABILITIES

    def missing_settings(self, settings: Settings) -> str | None:
        """A key, or a base URL (the emulator's), is needed."""
        if settings.together_api_key or settings.together_base_url or os.environ.get(ENV_KEY):
            return None
        return (
            "the together provider is not configured on this server (FTQ_TOGETHER_API_KEY, or "
            "FTQ_TOGETHER_BASE_URL for the emulator)"
        )

    def check_job(self, model: str, method: dict[str, Any]) -> None:
        """Refuse (422 naming the field) what Together refuses for a catalog model."""
        try:
            info = catalog.get_model(model)
        except AppError:
            return  # not in ftq's table: Together's own limits answer at submission
        params = method.get("hyperparameters") or {}
        if params.get("lora") is False and "full" not in info.tuning:
            raise Unprocessable(
                f"Together tunes {model} with LoRA only; drop lora: false",
                param="method.hyperparameters.lora",
            )
        kind = method.get("type", "supervised")
        if not info.supports(kind):
            raise Unprocessable(f"Together does not train {model} with {kind}", param="method.type")

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """The SDK with the team's key and base URL, or the server's."""
        from together import Together

        from ftq.shared.providers.together.provider import TogetherProvider

        if credential is not None:
            key, base_url = credential.api_key, credential.base_url or settings.together_base_url
        else:
            key, base_url = api_key(settings), settings.together_base_url
        client = Together(
            api_key=key,
            base_url=base_url,
            max_retries=SDK_MAX_RETRIES,
            timeout=SDK_TIMEOUT,
        )
        return TogetherProvider(client, self.name)


def api_key(settings: Settings) -> str:
    """The server's key: FTQ_TOGETHER_API_KEY, TOGETHER_API_KEY, or a placeholder for a URL."""
    if settings.together_api_key is not None:
        return settings.together_api_key.get_secret_value()
    return os.environ.get(ENV_KEY) or NO_KEY


TOGETHER = TogetherPlugin()
