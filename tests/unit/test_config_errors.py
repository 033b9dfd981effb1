"""Configuration errors: one line naming the variable, what it got and the form it wants; exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from ftq.shared.settings import ConfigError, Settings, load_settings

CLI = [sys.executable, "-m", "ftq.services.cli.main"]


def _env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


# -- list and dict settings accept both forms ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["a.example,b.example", " a.example , ,b.example, ", '["a.example", "b.example"]'],
)
def test_list_settings_accept_commas_and_json(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FTQ_WEBHOOK_ALLOW_HOSTS", raw)
    monkeypatch.setenv("FTQ_LOCAL_LORA_TARGET_MODULES", raw)
    settings = Settings()
    assert settings.webhook_allow_hosts == ["a.example", "b.example"]
    assert settings.local_lora_target_modules == ["a.example", "b.example"]


def test_empty_list_setting_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTQ_WEBHOOK_ALLOW_HOSTS", "")
    assert Settings().webhook_allow_hosts == []


@pytest.mark.parametrize(
    "raw",
    [
        "openai:gpt-4o-mini=5, azure-openai=2,*=1",
        '{"openai:gpt-4o-mini": 5, "azure-openai": 2, "*": 1}',
    ],
)
def test_dict_settings_accept_pairs_and_json(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FTQ_PROVIDER_CAPACITY", raw)
    assert Settings().provider_capacity == {"openai:gpt-4o-mini": 5, "azure-openai": 2, "*": 1}


def test_other_dict_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTQ_AZURE_DEPLOYMENTS", "gpt-4o-mini=mini-prod")
    monkeypatch.setenv("FTQ_LOCAL_MODELS", '{"tiny": "/models/tiny"}')
    monkeypatch.setenv("FTQ_EVAL_PROVIDER_RPS", "openai=2.5,emulator=0")
    settings = Settings()
    assert settings.azure_deployments == {"gpt-4o-mini": "mini-prod"}
    assert settings.local_models == {"tiny": "/models/tiny"}
    assert settings.eval_provider_rps == {"openai": 2.5, "emulator": 0.0}


def test_python_values_still_work() -> None:
    settings = Settings(webhook_allow_hosts=["x"], provider_capacity={"openai": 4})
    assert settings.webhook_allow_hosts == ["x"]
    assert settings.provider_capacity == {"openai": 4}


# -- one line per bad variable ------------------------------------------------------------------


def test_bad_integer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(monkeypatch, FTQ_PORT="abc") == "FTQ_PORT: got 'abc'; wants an integer"


def test_bad_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        _error(monkeypatch, FTQ_WEBHOOK_ALLOW_HOSTS="[oops")
        == "FTQ_WEBHOOK_ALLOW_HOSTS: got '[oops'; wants a list: a,b or a JSON array"
    )


def test_bad_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _error(monkeypatch, FTQ_PROVIDER_CAPACITY="openai:gpt-4o-mini=lots")
    assert line == (
        "FTQ_PROVIDER_CAPACITY: got 'openai:gpt-4o-mini=lots'; wants a mapping of integers: "
        "key=value,key2=value2 or a JSON object"
    )
    assert _error(monkeypatch, FTQ_PROVIDER_CAPACITY="openai").startswith(
        "FTQ_PROVIDER_CAPACITY: got 'openai'; wants a mapping"
    )


def test_bad_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        _error(monkeypatch, FTQ_ENVIRONMENT="prod")
        == "FTQ_ENVIRONMENT: got 'prod'; wants one of development, production"
    )


def test_bounds_and_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        _error(monkeypatch, FTQ_WEBHOOK_RETRY_SCALE="0")
        == "FTQ_WEBHOOK_RETRY_SCALE: got '0'; wants a number > 0 and <= 1"
    )
    monkeypatch.delenv("FTQ_WEBHOOK_RETRY_SCALE")
    assert (
        _error(monkeypatch, FTQ_EVAL_MAX_ITEMS="0")
        == "FTQ_EVAL_MAX_ITEMS: got '0'; wants an integer >= 1"
    )
    monkeypatch.delenv("FTQ_EVAL_MAX_ITEMS")
    assert (
        _error(monkeypatch, FTQ_EMBEDDED_WORKER="maybe")
        == "FTQ_EMBEDDED_WORKER: got 'maybe'; wants a boolean (true or false)"
    )


def test_several_bad_variables_share_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _error(monkeypatch, FTQ_PORT="abc", FTQ_ENVIRONMENT="prod")
    assert "\n" not in line
    assert "FTQ_PORT: got 'abc'; wants an integer" in line
    assert "FTQ_ENVIRONMENT: got 'prod'" in line
    assert line.count("; wants") == 2


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(admin_token=["not-a-string-secret"])
    assert str(caught.value) == "FTQ_ADMIN_TOKEN: got (hidden); wants a string"
    assert "not-a-string-secret" not in str(caught.value)


def test_production_refusals_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _error(monkeypatch, FTQ_ENVIRONMENT="production", FTQ_ADMIN_TOKEN="short-secret")
    assert line == "FTQ_ADMIN_TOKEN must be set to a real secret (16+ characters) in production"
    assert "short-secret" not in line


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    assert load_settings(admin_token=SecretStr("x" * 20)).admin_token.get_secret_value() == "x" * 20


# -- exit status 2, one stderr line, no traceback ----------------------------------------------


def _assert_one_line(result: subprocess.CompletedProcess[str], variable: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ftq: configuration error: ")
    assert variable in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FTQ_PORT", "abc"),
        ("FTQ_WEBHOOK_ALLOW_HOSTS", "[oops"),
        ("FTQ_PROVIDER_CAPACITY", "openai=many"),
        ("FTQ_ENVIRONMENT", "prod"),
    ],
)
def test_cli_exits_2_with_one_line(variable: str, value: str) -> None:
    result = subprocess.run(
        [*CLI, "config", "--no-check"],
        env=_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _assert_one_line(result, variable)
    assert repr(value) in line
    assert result.stdout == ""


def test_cli_production_placeholder_secret_exits_2_without_echoing_it() -> None:
    result = subprocess.run(
        [*CLI, "migrate"],
        env=_env(FTQ_ENVIRONMENT="production", FTQ_ADMIN_TOKEN="tiny-token"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_one_line(result, "FTQ_ADMIN_TOKEN")
    assert "tiny-token" not in result.stderr + result.stdout


def test_api_import_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import ftq.services.api.main"],
        env=_env(FTQ_PORT="abc"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert _assert_one_line(result, "FTQ_PORT").endswith("FTQ_PORT: got 'abc'; wants an integer")


def test_uvicorn_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "ftq.services.api.main:app", "--port", "1"],
        env=_env(FTQ_WEBHOOK_ALLOW_HOSTS="[oops"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_one_line(result, "FTQ_WEBHOOK_ALLOW_HOSTS")


def test_celery_app_import_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import ftq.services.worker.celery_app"],
        env=_env(FTQ_ENVIRONMENT="prod"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_one_line(result, "FTQ_ENVIRONMENT")
