"""The outbox keeps work whose enqueue failed until a relay succeeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.outbox import enqueue, relay


def test_broker_failure_leaves_messages_for_the_next_relay(session: Session) -> None:
    relay(session, lambda t, a: None)  # rows other tests left behind (rolled back after this test)
    for i in range(3):
        enqueue(session, "jobs.submit", f"ftj_{i}")
    sent: list[tuple[str, list[Any]]] = []

    def broken(task: str, args: Sequence[Any]) -> None:
        if len(sent) == 1:
            raise ConnectionError("redis down")
        sent.append((task, list(args)))

    assert relay(session, broken) == 1
    assert relay(session, lambda t, a: sent.append((t, list(a)))) == 2
    assert [args[0] for _, args in sent] == ["ftj_0", "ftj_1", "ftj_2"]
    assert relay(session, lambda t, a: sent.append((t, list(a)))) == 0
