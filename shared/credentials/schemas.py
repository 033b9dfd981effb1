"""Provider credential API shapes (the key goes in, never out)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# Request fields by the name a provider's `capabilities.credential_fields` gives them.
FIELD_NAMES = {
    "key": "api_key",
    "base_url": "base_url",
    "organization": "organization",
    "azure_endpoint": "azure_endpoint",
}


def _stripped(value: object) -> object:
    """A key pasted with surrounding whitespace is the key without it."""
    return value.strip() if isinstance(value, str) else value


class ProviderCredentialCreate(BaseModel):
    """A team's key for a provider, and where to use it."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=40)
    key: SecretStr = Field(min_length=8, max_length=1000, description="shown never again")
    base_url: str | None = Field(default=None, min_length=1, max_length=2000)
    organization: str | None = Field(default=None, min_length=1, max_length=200)
    azure_endpoint: str | None = Field(default=None, min_length=1, max_length=2000)

    _strip = field_validator("key", mode="before")(_stripped)


class ProviderCredentialUpdate(BaseModel):
    """A rotation: the new key (checked like a new one) replaces the old one."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(min_length=8, max_length=1000, description="shown never again")

    _strip = field_validator("key", mode="before")(_stripped)


class ProviderCredential(BaseModel):
    """A credential as read back: where it is used and the key's last four characters."""

    model_config = ConfigDict(from_attributes=True)

    object: Literal["provider_credential"] = "provider_credential"
    id: str
    provider: str
    key_hint: str
    base_url: str | None
    organization: str | None
    azure_endpoint: str | None
    created_at: datetime
    rotated_at: datetime | None
