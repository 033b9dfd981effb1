"""Providers as plugins: what a provider package exposes, and how ftq finds it.

A provider package declares one object in the `ftq.providers` entry-point group:

    [project.entry-points."ftq.providers"]
    acme = "acme_ftq.plugin:ACME"

The object satisfies `ProviderPlugin`: a `name`, its `Capabilities` (what the README's providers
table and the API's checks read), `missing_settings(settings)` (None when the server can use it,
else a sentence naming what is missing) and `build(settings, credential)` returning a `Provider`
(`ftq.shared.providers.base`). ftq's own providers register the same way (pyproject.toml).
Optionally it has `check_job(model, method)`: raise `Unprocessable` naming the field for a
request the provider is known to refuse, so the team gets a 422 at creation, not a failed job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ftq.shared.providers.base import Provider
    from ftq.shared.settings import Settings

ENTRY_POINT_GROUP = "ftq.providers"
# What every provider takes under `method.hyperparameters` (OpenAI's three; `beta` for DPO).
COMMON_HYPERPARAMETERS = frozenset({"n_epochs", "batch_size", "learning_rate_multiplier", "beta"})


@dataclass(frozen=True)
class Credential:
    """A key and where to use it: a team's own, or the gateway's when None is passed."""

    api_key: str
    base_url: str | None = None
    organization: str | None = None
    azure_endpoint: str | None = None
    # Who the key belongs to, for logs and errors (never the key itself).
    label: str = "team credential"

    def __repr__(self) -> str:
        return f"Credential(label={self.label!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, as the providers table and the request checks read it."""

    methods: tuple[str, ...] = ("supervised",)
    tuning: tuple[str, ...] = ("full",)
    pause: bool = False
    checkpoints: bool = False
    webhooks: bool = False
    chat: bool = True
    delete_model: bool = False
    hyperparameters: frozenset[str] = COMMON_HYPERPARAMETERS
    # Credential fields a team may register for this provider (empty: no team credentials).
    credential_fields: tuple[str, ...] = ()
    limits: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)

    def takes(self, hyperparameter: str) -> bool:
        """Whether `method.hyperparameters.<hyperparameter>` means something to this provider."""
        return hyperparameter in self.hyperparameters


class ProviderPlugin(Protocol):
    """One provider as a package exposes it through the `ftq.providers` entry-point group."""

    name: str
    capabilities: Capabilities

    def missing_settings(self, settings: Settings) -> str | None:
        """None when this server can send jobs to the provider; else what is missing."""
        ...

    def build(self, settings: Settings, credential: Credential | None = None) -> Provider:
        """A provider client, with the team's credential or the gateway's own settings."""
        ...
