"""The table of fine-tunable models."""

from __future__ import annotations

from datetime import date

import pytest

from ftq.shared.catalog import (
    MODELS,
    PRICES_ENV,
    UnknownModel,
    base_model_name,
    get_model,
    list_models,
)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o", "gpt-4o-2024-08-06"),
        ("gpt-4.1", "gpt-4.1-2025-04-14"),
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125"),
        ("ft:gpt-4o-mini-2024-07-18:acme:support:9xYz12ab", "gpt-4o-mini-2024-07-18"),
        ("ft:gpt-4o-mini-2024-07-18:acme::9xYz12ab:ckpt-step-100", "gpt-4o-mini-2024-07-18"),
        (" babbage-002 ", "babbage-002"),
    ],
)
def test_names_aliases_and_fine_tuned_models(name: str, canonical: str) -> None:
    assert get_model(name).name == canonical


def test_base_model_name() -> None:
    assert base_model_name("ft:gpt-4.1-2025-04-14:org:x:id") == "gpt-4.1-2025-04-14"
    assert base_model_name("gpt-4o") == "gpt-4o"


@pytest.mark.parametrize("name", ["gpt-5", "ft:gpt-5:org::x", "ft:", "", "o1-mini"])
def test_unknown_model_is_a_clear_error(name: str) -> None:
    with pytest.raises(UnknownModel, match="cannot be fine-tuned") as caught:
        get_model(name)
    assert caught.value.code == "model_not_available"
    assert caught.value.param == "model"
    assert "gpt-4o-mini-2024-07-18" in caught.value.message


def test_facts_from_openai_table() -> None:
    mini = get_model("gpt-4o-mini-2024-07-18")
    assert (mini.context, mini.encoding, mini.price_per_1m) == (65_536, "o200k_base", 3.0)
    assert get_model("gpt-4o-2024-08-06").vision
    assert get_model("gpt-3.5-turbo-0125").price_per_1m == 8.0
    assert get_model("gpt-3.5-turbo-0613").context == 4_096
    assert get_model("gpt-4.1-2025-04-14").context is None
    assert get_model("davinci-002").format == "completion"


def test_methods() -> None:
    assert get_model("gpt-4o").supports("dpo")
    assert get_model("gpt-4.1-nano").supports("dpo")
    assert not get_model("gpt-3.5-turbo-0125").supports("dpo")
    assert all(m.supports("supervised") for m in MODELS)


def test_shutdown_dates() -> None:
    shutdown = date(2027, 1, 14)
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"):
        assert get_model(name).shutdown == shutdown
    assert get_model("gpt-3.5-turbo-0125").shutdown is None


def test_encodings_by_family() -> None:
    for info in MODELS:
        expected = (
            "cl100k_base"
            if info.name.startswith(("gpt-3.5", "babbage", "davinci"))
            else "o200k_base"
        )
        assert info.encoding == expected, info.name


def test_price_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, '{"gpt-4o": 25, "gpt-4o-mini-2024-07-18": 2.5}')
    assert get_model("gpt-4o-2024-08-06").price_per_1m == 25.0
    assert get_model("ft:gpt-4o-mini-2024-07-18:a::b").price_per_1m == 2.5
    assert {m.name: m.price_per_1m for m in list_models()}["gpt-4o-2024-08-06"] == 25.0


def test_bad_price_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, "[1, 2]")
    with pytest.raises(ValueError, match=PRICES_ENV):
        get_model("gpt-4o")


def test_openai_takes_no_new_jobs_after_the_wind_down_and_says_where_to_go() -> None:
    from ftq.shared.catalog import ModelClosed, check_open

    check_open("gpt-4.1-nano-2025-04-14", "openai", date(2027, 1, 5), lambda: ["together"])
    with pytest.raises(ModelClosed) as closed:
        check_open(
            "gpt-4.1-nano-2025-04-14", "openai", date(2027, 1, 6), lambda: ["together", "local"]
        )
    assert closed.value.status_code == 422 and closed.value.param == "model"
    assert "since 2027-01-06" in closed.value.message
    assert "open providers: together, local" in closed.value.message
    for provider in ("azure-openai", "emulator", "local"):
        check_open("gpt-4o-mini-2024-07-18", provider, date(2027, 6, 1), list)


def test_a_model_retiring_within_30_days_is_warned_about_and_others_are_not() -> None:
    from ftq.shared.catalog import retirement_warning

    warning = retirement_warning("gpt-4o-mini", "openai", date(2026, 12, 20))
    assert warning and "on 2027-01-14" in warning and "gpt-4o-mini" in warning
    assert retirement_warning("gpt-4o-mini", "openai", date(2026, 12, 3)) is None, "42 days off"
    assert retirement_warning("gpt-4.1-nano-2025-04-14", "openai", date(2026, 12, 20)) is None
    assert retirement_warning("gpt-4o-mini", "azure-openai", date(2026, 12, 20)) is None


@pytest.mark.parametrize("provider", ["openai", "emulator", "azure-openai", "together"])
def test_the_default_model_is_the_providers_newest_with_no_shutdown(provider: str) -> None:
    from ftq.shared.catalog import default_model, provider_models

    chosen = get_model(default_model(provider))
    assert chosen.shutdown is None and chosen.format == "chat"
    offered = provider_models(provider) or list_models()
    assert chosen.name in {m.name for m in offered}
    assert default_model(provider) != "gpt-4o-mini-2024-07-18", "retires 2027-01-14"


def test_ftq_default_model_overrides_the_catalog_default() -> None:
    from ftq.shared.catalog import configured_default_model, default_model
    from ftq.shared.settings import Settings

    unset = Settings(default_model=None, provider="emulator")
    assert configured_default_model(unset) == default_model("emulator")
    assert configured_default_model(unset) == "gpt-4.1-nano-2025-04-14"
    pinned = Settings(default_model="gpt-4.1-mini-2025-04-14", provider="emulator")
    assert configured_default_model(pinned) == "gpt-4.1-mini-2025-04-14"
