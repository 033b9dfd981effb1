"""Where Together AI's routes live inside the emulator app (a test double)."""

from __future__ import annotations

PREFIX = "/together"
STORAGE = PREFIX + "/_storage"
# The signed-URL PUT stands for Together's object store, not its API: random faults skip it
# unless `only` names this route.
STORAGE_ROUTE = f"PUT {STORAGE}/{{file_id}}"


def is_together(path: str) -> bool:
    """Whether a path (inside the app) is one of Together's routes."""
    return path == PREFIX or path.startswith(PREFIX + "/")
