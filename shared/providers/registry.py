"""Build the provider a job names, from settings."""

from __future__ import annotations

from openai import AzureOpenAI, OpenAI

from shared.errors import Unprocessable
from shared.providers.base import Provider
from shared.providers.openai_provider import OpenAIProvider
from shared.settings import Settings, get_settings

PROVIDERS = ("emulator", "openai", "azure-openai")
# The SDK's own retries would hide 429s from our backoff and re-POST creates without a key.
SDK_MAX_RETRIES = 0
SDK_TIMEOUT = 60.0


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
        return OpenAIProvider(name, _openai_client(settings))
    if name == "azure-openai":
        return OpenAIProvider(name, _azure_client(settings))
    raise Unprocessable(
        f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}", param="provider"
    )


def _openai_client(settings: Settings) -> OpenAI:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        organization=settings.openai_organization,
        max_retries=SDK_MAX_RETRIES,
        timeout=SDK_TIMEOUT,
    )


def _azure_client(settings: Settings) -> AzureOpenAI:
    if not settings.azure_endpoint:
        raise Unprocessable("the azure-openai provider needs FTQ_AZURE_ENDPOINT", param="provider")
    key = settings.azure_api_key.get_secret_value() if settings.azure_api_key else None
    return AzureOpenAI(
        api_key=key,
        azure_endpoint=settings.azure_endpoint,
        api_version=settings.azure_api_version,
        max_retries=SDK_MAX_RETRIES,
        timeout=SDK_TIMEOUT,
    )
