"""ftq's own providers as plugins (registered in pyproject.toml's `ftq.providers` group).

`emulator` (ftq's OpenAI test double), `openai` (the official SDK; `FTQ_OPENAI_BASE_URL`,
`FTQ_OPENAI_ORGANIZATION`, `OPENAI_API_KEY` or `FTQ_OPENAI_API_KEY`), `azure-openai` (the SDK's
`AzureOpenAI`: `FTQ_AZURE_ENDPOINT`, `FTQ_AZURE_API_VERSION`, and `FTQ_AZURE_API_KEY`, or a
Microsoft Entra ID token: `FTQ_AZURE_AD_TOKEN`, or `FTQ_AZURE_USE_ENTRA_ID=true` with
azure-identity installed) and `local` (LoRA training on ftq's own `gpu` workers, the `local` extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openai import AzureOpenAI, OpenAI

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.base import Provider
from ftq.shared.providers.openai_provider import OpenAIProvider
from ftq.shared.providers.plugins import COMMON_HYPERPARAMETERS, Capabilities, Credential
from ftq.shared.settings import Settings

# The SDK's own retries would hide 429s from our backoff and re-POST creates without a key.
SDK_MAX_RETRIES = 0
SDK_TIMEOUT = 60.0
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
LOCAL_HYPERPARAMETERS = COMMON_HYPERPARAMETERS | {
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "quantization",
    "num_workers",
    "gpus_per_worker",
    "fsdp",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "eval_steps",
    "packing",
    "gradient_checkpointing",
    "from_checkpoint",
}
OPENAI_CAPABILITIES = Capabilities(
    methods=("supervised", "dpo"),
    tuning=("full",),
    pause=True,
    checkpoints=True,
    webhooks=True,
    delete_model=True,
    credential_fields=("api_key", "base_url", "organization"),
    limits="no new jobs after 2027-01-06; a few active jobs per model (no official cap)",
)

EMULATOR_CAPABILITIES = Capabilities(
    methods=("supervised", "dpo"),
    pause=True,
    checkpoints=True,
    webhooks=True,
    delete_model=True,
    credential_fields=("api_key",),
    limits="a test double: trains nothing",
)
AZURE_CAPABILITIES = Capabilities(
    methods=("supervised", "dpo"),
    pause=True,
    checkpoints=True,
    webhooks=True,
    delete_model=True,
    credential_fields=("api_key", "azure_endpoint"),
    limits="per-region quotas of the Azure resource",
)
LOCAL_CAPABILITIES = Capabilities(
    methods=("supervised", "dpo"),
    tuning=("lora",),
    checkpoints=True,
    hyperparameters=LOCAL_HYPERPARAMETERS,
    limits=(
        "models on FTQ_LOCAL_MODELS or in the Hugging Face cache; one job per gpu worker, "
        "or several GPUs and machines on Ray"
    ),
)

TokenProvider = Callable[[], str]


@dataclass(frozen=True)
class EmulatorPlugin:
    """ftq's OpenAI test double (in-process at `/emulator`, or FTQ_EMULATOR_URL)."""

    name: str = "emulator"
    capabilities: Capabilities = EMULATOR_CAPABILITIES

    def missing_settings(self, settings: Settings) -> str | None:
        """Always usable."""
        return None

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """The SDK pointed at the emulator."""
        client = OpenAI(
            api_key=credential.api_key if credential else "emulator",
            base_url=(credential.base_url if credential else None)
            or settings.resolved_emulator_url,
            max_retries=SDK_MAX_RETRIES,
            timeout=SDK_TIMEOUT,
        )
        return OpenAIProvider(self.name, client)


@dataclass(frozen=True)
class OpenAIPlugin:
    """OpenAI's fine-tuning API through the official SDK."""

    name: str = "openai"
    capabilities: Capabilities = OPENAI_CAPABILITIES

    def missing_settings(self, settings: Settings) -> str | None:
        """A key is needed."""
        if settings.openai_api_key or os.environ.get("OPENAI_API_KEY"):
            return None
        return "the openai provider is not configured on this server (OPENAI_API_KEY)"

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """The SDK with the team's key, or the server's."""
        return OpenAIProvider(self.name, openai_client(settings, credential))


@dataclass(frozen=True)
class AzurePlugin:
    """Azure OpenAI through the SDK's `AzureOpenAI` (deployments map models for chat)."""

    name: str = "azure-openai"
    capabilities: Capabilities = AZURE_CAPABILITIES

    def missing_settings(self, settings: Settings) -> str | None:
        """An endpoint is needed."""
        if settings.azure_endpoint:
            return None
        return "the azure-openai provider is not configured on this server (FTQ_AZURE_ENDPOINT)"

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """The Azure client; chat models map to the configured deployments."""
        client = azure_client(settings, credential=credential)
        return OpenAIProvider(self.name, client, deployments=dict(settings.azure_deployments))


@dataclass(frozen=True)
class LocalPlugin:
    """LoRA training on ftq's own `gpu` workers (the `local` extra)."""

    name: str = "local"
    capabilities: Capabilities = LOCAL_CAPABILITIES

    def missing_settings(self, settings: Settings) -> str | None:
        """FTQ_LOCAL_ENABLED is needed."""
        if settings.local_provider_enabled:
            return None
        return (
            "the local provider is not enabled on this server (FTQ_LOCAL_ENABLED, and GPU "
            "workers built with the `local` extra)"
        )

    def check_job(self, model: str, method: dict[str, Any]) -> None:
        """Refuse (422) what the training cluster can never do (4-bit QLoRA without CUDA)."""
        from ftq.shared.providers.local import capabilities, hyper

        capabilities.check_job(model, method)
        hyper.check_scale(method)

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """The local trainer's provider (its imports wait until it is used)."""
        from ftq.shared.providers.local.provider import LocalProvider

        return LocalProvider()


EMULATOR = EmulatorPlugin()
OPENAI = OpenAIPlugin()
AZURE_OPENAI = AzurePlugin()
LOCAL = LocalPlugin()


def openai_client(settings: Settings, credential: Credential | None = None) -> OpenAI:
    """OpenAI's client with a team's credential, or the configured key, base URL, organisation."""
    if credential is not None:
        return OpenAI(
            api_key=credential.api_key,
            base_url=credential.base_url or settings.openai_base_url,
            organization=credential.organization,
            max_retries=SDK_MAX_RETRIES,
            timeout=SDK_TIMEOUT,
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        organization=settings.openai_organization,
        max_retries=SDK_MAX_RETRIES,
        timeout=SDK_TIMEOUT,
    )


def azure_client(
    settings: Settings,
    token_provider: TokenProvider | None = None,
    credential: Credential | None = None,
) -> AzureOpenAI:
    """The SDK's Azure client: endpoint, api-version, and a key or an Entra ID token."""
    endpoint = (credential.azure_endpoint if credential else None) or settings.azure_endpoint
    if not endpoint:
        raise Unprocessable("the azure-openai provider needs FTQ_AZURE_ENDPOINT", param="provider")
    key = settings.azure_api_key.get_secret_value() if settings.azure_api_key else None
    token = settings.azure_ad_token.get_secret_value() if settings.azure_ad_token else None
    if credential is not None:
        key, token, token_provider = credential.api_key, None, None
    if key is None and token is None and token_provider is None and settings.azure_use_entra_id:
        token_provider = entra_token_provider()
    if key is not None:
        token, token_provider = None, None  # the SDK takes exactly one credential
    elif token is not None:
        token_provider = None
    return AzureOpenAI(
        api_key=key,
        azure_ad_token=token,
        azure_ad_token_provider=token_provider,
        azure_endpoint=endpoint,
        api_version=settings.azure_api_version,
        max_retries=SDK_MAX_RETRIES,
        timeout=SDK_TIMEOUT,
    )


def entra_token_provider() -> TokenProvider:
    """A bearer-token provider from azure-identity's DefaultAzureCredential."""
    try:
        from azure.identity import (  # type: ignore[import-not-found]
            DefaultAzureCredential,
            get_bearer_token_provider,
        )
    except ImportError as exc:
        raise Unprocessable(
            "FTQ_AZURE_USE_ENTRA_ID needs the azure-identity package installed",
            param="provider",
            code="provider_not_configured",
        ) from exc
    provider: TokenProvider = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    return provider
