"""Dataset upload, dedupe, bad input and tenancy over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ftq.shared.settings import get_settings
from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, upload


def _blob_files(team: dict[str, object]) -> list[str]:
    root = get_settings().resolved_blob_dir / "datasets" / str(team["id"])
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_stores_file_and_queues_validation(
    client: TestClient, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    content = chat_jsonl(12)
    response = upload(client, team, content, name="units")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("ds_")
    assert body["status"] == "validating"
    assert body["bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["name"] == "units"
    assert ("datasets.validate", [body["id"]]) in sent_tasks
    download = client.get(f"/v1/datasets/{body['id']}/content", headers=auth(team))
    assert download.content == content


def test_same_bytes_return_the_existing_dataset(client: TestClient) -> None:
    team = create_team(client)
    first = upload(client, team, chat_jsonl(12))
    before = _blob_files(team)
    second = upload(client, team, chat_jsonl(12))
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert _blob_files(team) == before


@pytest.mark.parametrize(
    ("content", "status", "code", "fragment"),
    [
        (b'{"messages": []}\n\xff\xfe oops\n', 422, "invalid_jsonl", "line 2: not UTF-8"),
        (b'{"messages": []}\n{"messages": [}\n', 422, "invalid_jsonl", "line 2: not JSON"),
        (b"[1, 2]\n", 422, "invalid_jsonl", "line 1: a JSON list"),
        (
            b'{"messages": []}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
            422,
            "invalid_jsonl",
            "line 2: not JSON (depth limit exceeded",
        ),
        (b"\n\n", 422, "empty_file", "no examples"),
        (b"", 400, "empty_file", "empty"),
    ],
)
def test_bad_files_are_refused_with_line_numbers_and_leave_nothing(
    client: TestClient, content: bytes, status: int, code: str, fragment: str
) -> None:
    team = create_team(client)
    before = _blob_files(team)
    response = upload(client, team, content)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == "file"
    assert fragment in error["message"]
    assert _blob_files(team) == before
    assert client.get("/v1/datasets", headers=auth(team)).json()["data"] == []


def test_a_line_over_the_line_limit_is_named_and_never_held_whole(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftq.shared.datasets import jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 1024 * 1024)
    team = create_team(client)
    long_line = b'{"messages": [{"role": "user", "content": "' + b"x" * 3_000_000 + b'"}]}\n'
    response = upload(client, team, chat_jsonl(12) + long_line + b"[1]\n")
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "line 13: longer than 1 MiB" in message
    assert "line 14: a JSON list" in message, "lines after the long one keep their numbers"
    assert _blob_files(team) == []


def test_file_over_the_size_limit_is_413_and_no_partial_blob(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "max_upload_bytes", 2_000)
    team = create_team(client)
    before = _blob_files(team)
    response = upload(client, team, chat_jsonl(40))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert _blob_files(team) == before


def test_upload_without_file_field_is_400(client: TestClient) -> None:
    team = create_team(client)
    response = client.post(
        "/v1/datasets", data={"name": "x"}, files={"other": ("a", b"b")}, headers=auth(team)
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_bad_purpose_is_422_naming_the_field(client: TestClient) -> None:
    team = create_team(client)
    response = upload(client, team, chat_jsonl(12), purpose="banana")
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "purpose"
    assert _blob_files(team) == []


def test_another_teams_dataset_is_404(client: TestClient) -> None:
    owner, other = create_team(client, "owner"), create_team(client, "other")
    dataset = upload(client, owner, chat_jsonl(12)).json()
    for path in (f"/v1/datasets/{dataset['id']}", f"/v1/datasets/{dataset['id']}/content"):
        response = client.get(path, headers=auth(other))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert client.delete(f"/v1/datasets/{dataset['id']}", headers=auth(other)).status_code == 404


def test_list_paginates_newest_first(client: TestClient) -> None:
    team = create_team(client)
    ids = [upload(client, team, chat_jsonl(12, offset=i * 100)).json()["id"] for i in range(5)]
    first = client.get("/v1/datasets", params={"limit": 2}, headers=auth(team)).json()
    assert first["object"] == "list"
    assert [d["id"] for d in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = client.get(
        "/v1/datasets", params={"limit": 10, "after": first["data"][-1]["id"]}, headers=auth(team)
    ).json()
    assert [d["id"] for d in rest["data"]] == ids[::-1][2:]
    assert rest["has_more"] is False


def test_delete_removes_row_and_file(client: TestClient) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    assert client.delete(f"/v1/datasets/{dataset['id']}", headers=auth(team)).status_code == 204
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).status_code == 404
    assert _blob_files(team) == []


@pytest.mark.parametrize("name", ["数据.jsonl", 'evil".jsonl; filename="x.sh', "plain.jsonl"])
def test_download_names_the_file_safely_for_any_name(client: TestClient, name: str) -> None:
    import re
    from urllib.parse import unquote

    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12), name=name).json()
    download = client.get(f"/v1/datasets/{dataset['id']}/content", headers=auth(team))
    assert download.status_code == 200, download.text
    found = re.fullmatch(
        r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([^;"\s]+)',
        download.headers["content-disposition"],
    )
    assert found, download.headers["content-disposition"]
    assert unquote(found[2]) == name, "filename*= carries the exact name"
    assert found[1].isascii() and ";" not in found[1], "the fallback injects no parameter"


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def test_an_unknown_form_field_is_refused_as_it_arrives_and_leaves_nothing(
    client: TestClient,
) -> None:
    team = create_team(client)
    boundary = "ftqboundary"
    parts = [("file", "t.jsonl", chat_jsonl(12))] + [(f"junk{i}", None, b"x") for i in range(3)]
    response = client.post(
        "/v1/datasets",
        content=_multipart(boundary, parts),
        headers={**auth(team), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "junk0"
    assert _blob_files(team) == []
    twice = [("name", None, b"a"), ("name", None, b"b"), ("file", "t.jsonl", chat_jsonl(12))]
    response = client.post(
        "/v1/datasets",
        content=_multipart(boundary, twice),
        headers={**auth(team), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422 and "given twice" in response.json()["error"]["message"]


def test_a_chunked_body_is_counted_against_the_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftq.services.api import uploads

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 2_000)
    monkeypatch.setattr(uploads, "MAX_OVERHEAD_BYTES", 1_000)
    team = create_team(client)
    boundary = "ftqboundary"
    # Many small fields that the parser would otherwise collect without end.
    body = _multipart(boundary, [("name", None, b"x" * 60_000), ("file", "t.jsonl", b"{}\n")])

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = client.post(
        "/v1/datasets",
        content=chunks(),
        headers={**auth(team), "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    assert _blob_files(team) == []


def test_a_client_that_disconnects_mid_upload_leaves_no_row_and_no_blob(
    client: TestClient,
) -> None:
    team = create_team(client)
    boundary = "ftqboundary"
    body = _multipart(boundary, [("file", "t.jsonl", chat_jsonl(3000))])
    half = body[: len(body) // 2]
    messages: list[dict[str, object]] = [
        {"type": "http.request", "body": half[i : i + 65536], "more_body": True}
        for i in range(0, len(half), 65536)
    ]
    headers = [
        (b"authorization", f"Bearer {team['api_key']['key']}".encode()),
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/datasets",
        "raw_path": b"/v1/datasets",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    received: list[int] = []

    async def receive() -> dict[str, object]:
        await asyncio.sleep(0)
        if messages:
            message = messages.pop(0)
            received.append(len(message["body"]))  # type: ignore[arg-type]
            return message
        return {"type": "http.disconnect"}  # the client went away half-way through the file

    async def send(message: dict[str, object]) -> None:
        return None

    with contextlib.suppress(Exception):
        asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sum(received) == len(half), "the server read the half that was sent"
    assert _blob_files(team) == [], "no partial blob is left"
    assert client.get("/v1/datasets", headers=auth(team)).json()["data"] == []
