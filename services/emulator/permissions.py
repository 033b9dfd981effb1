"""Checkpoint permissions, as OpenAI keeps them: which projects may use a fine-tuned checkpoint."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftq.services.emulator.errors import OpenAIError
from ftq.services.emulator.ids import random_id
from ftq.services.emulator.pagination import page_of

OBJECT = "checkpoint.permission"


@dataclass(frozen=True)
class Permission:
    """One project's access to one checkpoint."""

    id: str
    model: str
    project_id: str
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        """OpenAI's `checkpoint.permission` object."""
        return {
            "id": self.id,
            "object": OBJECT,
            "created_at": self.created_at,
            "project_id": self.project_id,
        }


class CheckpointPermissions:
    """Grants per checkpoint, for models the emulator's own jobs made."""

    def __init__(self, knows_model: Callable[[str], bool]) -> None:
        self.knows_model = knows_model
        self.lock = threading.Lock()
        self.rng = random.Random()
        self.grants: dict[str, list[Permission]] = {}

    def reset(self) -> None:
        """Forget every grant."""
        with self.lock:
            self.grants.clear()

    def _check(self, model: str) -> None:
        if not self.knows_model(model):
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="fine_tuned_model_checkpoint",
                code="model_not_found",
            )

    def create(self, model: str, project_ids: list[str]) -> dict[str, Any]:
        """Grant each project access; the new permissions as a list."""
        self._check(model)
        if not project_ids:
            raise OpenAIError(400, "project_ids must not be empty.", param="project_ids")
        now = int(time.time())
        with self.lock:
            made = [
                Permission(random_id(self.rng, "cp_", 24), model, project, now)
                for project in project_ids
            ]
            self.grants.setdefault(model, []).extend(made)
        data = [p.as_dict() for p in made]
        return _listing(data, has_more=False)

    def list(
        self, model: str, project_id: str | None, after: str | None, limit: int, order: str
    ) -> dict[str, Any]:
        """A page of a checkpoint's permissions (newest first unless `order=ascending`)."""
        self._check(model)
        with self.lock:
            rows = [p for p in self.grants.get(model, []) if project_id in (None, p.project_id)]
        if order != "ascending":
            rows = rows[::-1]
        page = page_of(rows, after, limit, key=lambda p: p.id)
        return _listing([p.as_dict() for p in page["data"]], has_more=page["has_more"])

    def delete(self, model: str, permission_id: str) -> dict[str, Any]:
        """Revoke one permission."""
        self._check(model)
        with self.lock:
            rows = self.grants.get(model, [])
            kept = [p for p in rows if p.id != permission_id]
            if len(kept) == len(rows):
                raise OpenAIError(
                    404,
                    f"No such checkpoint permission: {permission_id}",
                    param="permission_id",
                )
            self.grants[model] = kept
        return {"id": permission_id, "object": OBJECT, "deleted": True}


def _listing(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {
        "object": "list",
        "data": data,
        "first_id": first,
        "last_id": last,
        "has_more": has_more,
    }
