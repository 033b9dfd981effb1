"""Find the providers (plugins in the `ftq.providers` entry-point group) and build them.

A job picks a provider with `provider`; `FTQ_PROVIDER` is the default. Built-in providers are
registered by ftq's own package metadata the same way a third-party package registers one
(`ftq.shared.providers.plugins` says how), so the list here is whatever is installed. Plugins load
on first use: the light client imports this module without any provider SDK installed.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from ftq.shared.errors import Unprocessable
from ftq.shared.providers.plugins import ENTRY_POINT_GROUP, Credential, ProviderPlugin
from ftq.shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from ftq.shared.providers.base import Provider

log = logging.getLogger(__name__)

# Listed first, in this order; other plugins follow by name.
BUILTIN_ORDER = ("emulator", "openai", "azure-openai", "local", "together")


@cache
def plugins() -> dict[str, ProviderPlugin]:
    """Every installed provider plugin by name (a plugin that fails to load is logged, skipped)."""
    found: dict[str, ProviderPlugin] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        plugin = _load(point)
        if plugin is None:
            continue
        if plugin.name in found:
            log.error("two provider plugins are named %r; keeping the first", plugin.name)
            continue
        found[plugin.name] = plugin
    return dict(sorted(found.items(), key=lambda item: _rank(item[0])))


def _load(point: EntryPoint) -> ProviderPlugin | None:
    try:
        plugin = point.load()
    except Exception as exc:  # a broken plugin package must not take the gateway down
        log.error("provider plugin %s (%s) failed to load: %s", point.name, point.value, exc)
        return None
    if isinstance(plugin, type):
        plugin = plugin()
    if getattr(plugin, "name", None) != point.name:
        log.error("provider plugin %s names itself %r", point.name, getattr(plugin, "name", None))
        return None
    return plugin  # type: ignore[no-any-return]


def _rank(name: str) -> tuple[int, str]:
    order = BUILTIN_ORDER.index(name) if name in BUILTIN_ORDER else len(BUILTIN_ORDER)
    return order, name


def provider_names() -> tuple[str, ...]:
    """The names of every installed provider, built-ins first."""
    return tuple(plugins())


def get_plugin(name: str) -> ProviderPlugin:
    """The plugin called `name`, or a 422 naming the choices."""
    plugin = plugins().get(name)
    if plugin is None:
        raise Unprocessable(
            f"unknown provider {name!r}; choose one of {', '.join(provider_names())}",
            param="provider",
        )
    return plugin


def get_provider(
    name: str, settings: Settings | None = None, credential: Credential | None = None
) -> Provider:
    """The provider called `name`, with a team's credential or the server's own settings."""
    return get_plugin(name).build(settings or get_settings(), credential)


def check_configured(
    name: str, settings: Settings | None = None, *, team_credential: bool = False
) -> None:
    """Refuse (422, naming `provider`) a provider that is unknown or lacks its settings.

    `team_credential`: the caller's team has its own credential for it, which stands in for
    the server's missing key or endpoint.
    """
    plugin = get_plugin(name)
    missing = None if team_credential else plugin.missing_settings(settings or get_settings())
    if missing:
        raise Unprocessable(missing, param="provider", code="provider_not_configured")


def configured_providers(settings: Settings | None = None) -> list[str]:
    """The providers this server can send jobs to now."""
    settings = settings or get_settings()
    return [name for name, plugin in plugins().items() if not plugin.missing_settings(settings)]
