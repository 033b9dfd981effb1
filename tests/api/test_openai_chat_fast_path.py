"""The chat relay's fast path: its one-second key and credential caches, and its stream relay.

A key or credential changed through this process counts on the very next request; one changed
by another process (here: a plain SQL update, which no ORM event sees) within the cache window.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, update
from sqlalchemy.orm import Session

from ftq.services.api import deps
from ftq.services.api.routers import openai_chat
from ftq.shared.compat import chat
from ftq.shared.models import ApiKey, ProviderCredential, Team
from ftq.shared.providers.base import ChatResult, ProviderBase
from ftq.shared.security import encrypt
from ftq.shared.timeutil import utcnow
from tests.factories import ADMIN, create_team

MODEL = "gpt-4o-mini-2024-07-18"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Echo(ProviderBase):
    """Answers every completion; `credentials` are those it was looked up with, in order."""

    name = "echo"

    def __init__(self) -> None:
        self.credentials: list[Any] = []

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        return ChatResult(text="hello", prompt_tokens=1, completion_tokens=1)


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Echo:
    provider = Echo()

    def named(name: str, credential: Any = None) -> Echo:
        provider.credentials.append(credential)
        return provider

    monkeypatch.setattr(chat, "provider_named", named)
    return provider


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(deps.key_cache, "clock", fake)
    monkeypatch.setattr(chat, "_clock", fake)
    deps.key_cache.clear()
    chat._credentials.clear()
    return fake


def _chat(client: TestClient, key: str) -> int:
    answer = client.post(
        "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
    )
    if answer.status_code == 401:
        assert answer.json()["error"]["type"] == "authentication_error"
    return answer.status_code


def test_a_key_revoked_through_this_process_is_refused_by_the_next_completion(
    client: TestClient, echo: Echo, clock: Clock
) -> None:
    team = create_team(client, "revoked-here")
    key = team["api_key"]
    assert _chat(client, key["key"]) == 200  # now cached
    revoked = client.delete(f"/v1/admin/teams/{team['id']}/keys/{key['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    assert _chat(client, key["key"]) == 401, "in-process revocation empties the cache"


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_window(
    client: TestClient, session: Session, echo: Echo, clock: Clock
) -> None:
    team = create_team(client, "revoked-elsewhere")
    key = team["api_key"]
    assert _chat(client, key["key"]) == 200
    # Another server process revokes it: the database changes, this process hears nothing.
    session.connection().execute(
        update(ApiKey.__table__)
        .where(ApiKey.__table__.c.id == key["id"])
        .values(revoked_at=utcnow())
    )
    headers = {"authorization": f"Bearer {key['key']}"}
    assert client.get("/v1/team", headers=headers).status_code == 401, "other routes: at once"
    clock.now += deps.KEY_CACHE_SECONDS / 2
    assert _chat(client, key["key"]) == 200, "inside the window the relay trusts its lookup"
    clock.now += deps.KEY_CACHE_SECONDS
    assert _chat(client, key["key"]) == 401
    clock.now += 60
    assert _chat(client, key["key"]) == 401, "a refused key is never cached"


def test_a_wrong_key_is_never_cached(client: TestClient, echo: Echo, clock: Clock) -> None:
    assert _chat(client, "ftq_sk_not-a-key") == 401
    assert _chat(client, "ftq_sk_not-a-key") == 401
    assert deps.key_cache._teams == {}


def test_a_cached_team_outlives_the_session_that_read_it(session: Session) -> None:
    team = Team(id="team_cachecopy", name="cache-copy", signing_secret_encrypted="x")
    session.add(team)
    session.flush()
    cache = deps.KeyCache(clock=Clock())
    cache.put("hash", team)
    session.expire_all()  # what the request's rollback does to the rows it read
    cached = cache.get("hash")
    assert cached is not None and cached is not team
    assert (cached.id, cached.name) == ("team_cachecopy", "cache-copy")


def test_key_cache_entries_expire() -> None:
    clock = Clock()
    cache = deps.KeyCache(seconds=1.0, clock=clock)
    cache.put("hash", Team(id="team_x", name="x", signing_secret_encrypted="x"))
    clock.now += 0.99
    assert cache.get("hash") is not None
    clock.now += 0.01
    assert cache.get("hash") is None


def test_a_warm_base_model_completion_asks_the_database_nothing(
    client: TestClient, engine: Engine, echo: Echo, clock: Clock
) -> None:
    team = create_team(client, "no-queries")
    assert _chat(client, team["api_key"]["key"]) == 200  # key and credential lookups cached
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert _chat(client, team["api_key"]["key"]) == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements == []


def _credential_row(team_id: str, key: str, row_id: str = "pcr_cache1") -> ProviderCredential:
    return ProviderCredential(
        id=row_id,
        team_id=team_id,
        provider="emulator",
        key_encrypted=encrypt(key),
        key_hint=key[-4:],
    )


def test_a_credential_registered_or_revoked_here_counts_at_once(
    client: TestClient, session: Session, echo: Echo, clock: Clock
) -> None:
    team = create_team(client, "credential-here")
    key = team["api_key"]["key"]
    assert _chat(client, key) == 200
    row = _credential_row(team["id"], "sk-team-key-0001")
    session.add(row)
    session.flush()
    assert _chat(client, key) == 200
    row.revoked_at, row.key_encrypted = utcnow(), ""
    session.flush()
    assert _chat(client, key) == 200
    used = [c.api_key if c else None for c in echo.credentials]
    assert used == [None, "sk-team-key-0001", None]


def test_a_credential_registered_elsewhere_counts_within_the_cache_window(
    client: TestClient, session: Session, echo: Echo, clock: Clock
) -> None:
    team = create_team(client, "credential-elsewhere")
    key = team["api_key"]["key"]
    assert _chat(client, key) == 200
    table = ProviderCredential.__table__
    session.connection().execute(
        insert(table).values(
            id="pcr_cache2",
            team_id=team["id"],
            provider="emulator",
            key_encrypted=encrypt("sk-team-key-0002"),
            key_hint="0002",
            created_at=utcnow(),
        )
    )
    assert _chat(client, key) == 200
    clock.now += chat.CREDENTIAL_CACHE_SECONDS
    assert _chat(client, key) == 200
    used = [c.api_key if c else None for c in echo.credentials]
    assert used == [None, None, "sk-team-key-0002"]


# -- the stream relay -------------------------------------------------------------------------


def _events(first: bytes, rest: Iterator[bytes]) -> AsyncGenerator[bytes, None]:
    events = openai_chat._events(first, rest)
    assert isinstance(events, AsyncGenerator)
    return events


def _collect(events: AsyncGenerator[bytes, None], take: int | None = None) -> list[bytes]:
    async def run() -> list[bytes]:
        got: list[bytes] = []
        async with aclosing(events):
            async for piece in events:
                got.append(piece)
                if take is not None and len(got) == take:
                    break
        return got

    return asyncio.run(run())


def test_a_stream_is_relayed_whole_and_in_order() -> None:
    pieces = [f"data: {i}\n\n".encode() for i in range(50)]
    got = _collect(_events(b"data: first\n\n", iter(pieces)))
    assert got == [b"data: first\n\n", *pieces]


def test_a_caller_that_goes_away_closes_the_providers_stream() -> None:
    closed, produced = threading.Event(), []

    def endless() -> Iterator[bytes]:
        try:
            while True:
                produced.append(1)
                yield b"data: x\n\n"
        finally:
            closed.set()

    got = _collect(_events(b"data: first\n\n", endless()), take=3)
    assert len(got) == 3
    assert closed.wait(5), "the provider's stream was closed"
    assert len(produced) <= 3, "one piece read ahead at most"


def test_no_thread_reads_on_while_the_caller_is_slow() -> None:
    produced: list[int] = []

    def counted() -> Iterator[bytes]:
        for i in range(100):
            produced.append(i)
            yield b"data: x\n\n"

    async def run() -> int:
        async with aclosing(_events(b"", counted())) as events:
            await anext(events)
            await asyncio.sleep(0.3)  # the caller is slow: nothing more is read meanwhile
            return len(produced)

    assert asyncio.run(run()) == 2, "the piece taken and the one read ahead"


def test_a_reader_failure_fails_the_response() -> None:
    def broken() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("not a provider error")

    async def run() -> list[bytes]:
        got = []
        async for piece in _events(b"", broken()):
            got.append(piece)
        return got

    with pytest.raises(RuntimeError, match="not a provider error"):
        asyncio.run(run())
