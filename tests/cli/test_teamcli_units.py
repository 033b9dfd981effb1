"""The team CLI's pieces without a server: streamed upload progress, config precedence."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from ftq.services.cli.client import FtqClient
from ftq.services.cli.team import config


def test_upload_streams_the_file_and_reports_progress_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"messages": []}\n' * 40_000)  # 680 KB
    seen: list[int] = []
    received: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        received["length"] = int(request.headers["content-length"])
        received["bytes"] = len(body)
        return httpx.Response(201, json={"id": "ds_1", "status": "validating", "bytes": 1})

    client = FtqClient("http://ftq.test", "ftq_sk_x")
    client.http = httpx.Client(base_url="http://ftq.test", transport=httpx.MockTransport(handler))
    created = client.upload_dataset(path, seen.append, purpose="fine-tune")
    assert created["id"] == "ds_1"
    assert len(seen) > 5 and seen == sorted(seen)  # read from disk in chunks, in order
    assert seen[-1] == path.stat().st_size
    assert received["bytes"] == received["length"] > path.stat().st_size  # multipart framing


def test_environment_overrides_the_login_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("FTQ_URL", raising=False)
    monkeypatch.delenv("FTQ_API_KEY", raising=False)
    with pytest.raises(config.NotLoggedIn):
        config.load()
    path = config.save(config.Credentials("http://a.test/", "ftq_sk_file"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.load() == config.Credentials("http://a.test", "ftq_sk_file")
    monkeypatch.setenv("FTQ_API_KEY", "ftq_sk_env")
    monkeypatch.setenv("FTQ_URL", "http://b.test")
    loaded = config.load()
    assert loaded == config.Credentials("http://b.test", "ftq_sk_env")
    assert "ftq_sk_env" not in repr(loaded)


def test_a_config_file_left_readable_by_others_is_tightened_on_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    target = tmp_path / "ftq" / "config.json"
    target.parent.mkdir()
    target.write_text("{}")
    os.chmod(target, 0o644)
    config.save(config.Credentials("http://a.test", "ftq_sk_1"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
