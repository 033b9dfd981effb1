"""Domain hooks: how a lower domain starts work in a higher one without importing it.

ftq's domains are layered, lowest first: webhooks, teams, datasets, providers, jobs, evals
(import-linter holds every module to it in CI; see `.importlinter`). A lower domain never imports
a higher one. Where a change in a lower domain must start work in a higher one (a dataset that
finished validating releases the jobs waiting for it; a job that succeeded starts its eval), the
lower domain declares a `Hook` and calls it, and the higher domain's handler is connected to it in
one place, `ftq.shared.wiring.install()`, which every process entry point (the API app, the Celery
app, the test suite) calls before work starts. Handlers run synchronously, in the order they were
connected, inside the caller's session and transaction: an exception rolls the whole change back.
Work that belongs to the request or task itself is orchestrated there instead, not through a hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_installed = False


class HooksNotInstalled(RuntimeError):
    """A hook was called in a process that never connected the domains' handlers."""


def mark_installed() -> None:
    """Record that the handlers are connected (called by `ftq.shared.wiring.install`)."""
    global _installed
    _installed = True


class Hook(Generic[P, R]):
    """A named point in a lower domain where the higher domains' handlers run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[Callable[P, R]] = []

    def connect(self, handler: Callable[P, R]) -> Callable[P, R]:
        """Run `handler` whenever the hook is called (once, however often it is connected)."""
        if handler not in self._handlers:
            self._handlers.append(handler)
        return handler

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> list[R]:
        """Run every handler; their results in connection order."""
        if not _installed:
            raise HooksNotInstalled(
                f"hook {self.name!r} called before ftq.shared.wiring.install() connected the "
                "domains' handlers"
            )
        return [handler(*args, **kwargs) for handler in self._handlers]
