"""ftq's calls to a Ray cluster carry the token a token-authenticated cluster wants, found where
Ray's own clients look (Ray 2.5x enables token auth for new local clusters by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftq.shared.providers.local.ray_cluster import auth_headers


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_no_token_anywhere_sends_none() -> None:
    assert auth_headers() == {}


def test_the_default_token_file_is_used(tmp_path: Path) -> None:
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-the-file\n")
    assert auth_headers() == {"authorization": "Bearer from-the-file"}


def test_the_environment_wins_over_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    named = tmp_path / "named"
    named.write_text("from-the-named-file")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert auth_headers() == {"authorization": "Bearer from-the-named-file"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-env")
    assert auth_headers() == {"authorization": "Bearer from-the-env"}


def test_auth_mode_disabled_sends_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-env")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert auth_headers() == {}
