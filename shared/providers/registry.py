"""Build the provider a job names, from settings.

Providers: `emulator` (our OpenAI test double), `openai` (the official SDK; `FTQ_OPENAI_BASE_URL`,
`FTQ_OPENAI_ORGANIZATION`, `OPENAI_API_KEY` or `FTQ_OPENAI_API_KEY`) and `azure-openai` (the SDK's
`AzureOpenAI`: `FTQ_AZURE_ENDPOINT`, `FTQ_AZURE_API_VERSION`, and `FTQ_AZURE_API_KEY`, or a
Microsoft Entra ID token: `FTQ_AZURE_AD_TOKEN`, or `FTQ_AZURE_USE_ENTRA_ID=true` with
azure-identity installed), and `local` (LoRA training on ftq's own `gpu` workers, the `local`
extra). A job picks one with `provider`; `FTQ_PROVIDER` is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from openai import AzureOpenAI, OpenAI

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.base import Provider
from ftq.shared.providers.openai_provider import OpenAIProvider
from ftq.shared.settings import Settings, get_settings

PROVIDERS = ("emulator", "openai", "azure-openai", "local")
# The SDK's own retries would hide 429s from our backoff and re-POST creates without a key.
SDK_MAX_RETRIES = 0
SDK_TIMEOUT = 60.0
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"

TokenProvider = Callable[[], str]


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """The configured provider called `name`."""
    settings = settings or get_settings()
    if name == "emulator":
        client = OpenAI(
            api_key="emulator",
            base_url=settings.resolved_emulator_url,
            max_retries=SDK_MAX_RETRIES,
            timeout=SDK_TIMEOUT,
        )
        return OpenAIProvider(name, client)
    if name == "openai":
        return OpenAIProvider(name, openai_client(settings))
    if name == "azure-openai":
        return OpenAIProvider(
            name, azure_client(settings), deployments=dict(settings.azure_deployments)
        )
    if name == "local":
        from ftq.shared.providers.local.provider import LocalProvider

        return LocalProvider()
    raise Unprocessable(
        f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}", param="provider"
    )


def check_configured(name: str, settings: Settings | None = None) -> None:
    """Refuse (422, naming `provider`) a provider that is unknown or lacks its settings."""
    settings = settings or get_settings()
    if name not in PROVIDERS:
        raise Unprocessable(
            f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}", param="provider"
        )
    if name == "azure-openai" and not settings.azure_endpoint:
        raise Unprocessable(
            "the azure-openai provider is not configured on this server (FTQ_AZURE_ENDPOINT)",
            param="provider",
            code="provider_not_configured",
        )
    if name == "local" and not settings.local_provider_enabled:
        raise Unprocessable(
            "the local provider is not enabled on this server (FTQ_LOCAL_ENABLED, and GPU workers "
            "built with the `local` extra)",
            param="provider",
            code="provider_not_configured",
        )
    if name == "openai" and not (settings.openai_api_key or os.environ.get("OPENAI_API_KEY")):
        raise Unprocessable(
            "the openai provider is not configured on this server (OPENAI_API_KEY)",
            param="provider",
            code="provider_not_configured",
        )


def openai_client(settings: Settings) -> OpenAI:
    """OpenAI's client with the configured key, base URL and organisation."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        organization=settings.openai_organization,
        max_retries=SDK_MAX_RETRIES,
        timeout=SDK_TIMEOUT,
    )


def azure_client(settings: Settings, token_provider: TokenProvider | None = None) -> AzureOpenAI:
    """The SDK's Azure client: endpoint, api-version, and a key or an Entra ID token."""
    if not settings.azure_endpoint:
        raise Unprocessable("the azure-openai provider needs FTQ_AZURE_ENDPOINT", param="provider")
    key = settings.azure_api_key.get_secret_value() if settings.azure_api_key else None
    token = settings.azure_ad_token.get_secret_value() if settings.azure_ad_token else None
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
        azure_endpoint=settings.azure_endpoint,
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


def configured_providers(settings: Settings | None = None) -> list[str]:
    """The providers this server can send jobs to now."""
    names = []
    for name in PROVIDERS:
        try:
            check_configured(name, settings)
        except Unprocessable:
            continue
        names.append(name)
    return names
