"""`/v1/fine_tuning/checkpoints/{model}/permissions` of the emulator (OpenAI's sharing API)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from ftq.services.emulator.errors import missing
from ftq.services.emulator.routes.common import json_body
from ftq.services.emulator.store import EmulatorState

PREFIX = "/v1/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions"


def permissions_router(state: EmulatorState) -> APIRouter:
    """Create, list and delete a checkpoint's permissions."""
    router = APIRouter()
    grants = state.permissions

    @router.post(PREFIX)
    async def create_permissions(
        fine_tuned_model_checkpoint: str, request: Request
    ) -> dict[str, Any]:
        """Grant the listed projects access to the checkpoint."""
        body = await json_body(request)
        projects = body.get("project_ids") if isinstance(body, dict) else None
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise missing("project_ids")
        return grants.create(fine_tuned_model_checkpoint, projects)

    @router.get(PREFIX)
    def list_permissions(
        fine_tuned_model_checkpoint: str,
        project_id: str | None = None,
        after: str | None = None,
        limit: int = Query(10, ge=1, le=100),
        order: Literal["ascending", "descending"] = "descending",
    ) -> dict[str, Any]:
        """The checkpoint's permissions."""
        return grants.list(fine_tuned_model_checkpoint, project_id, after, limit, order)

    @router.delete(PREFIX + "/{permission_id}")
    def delete_permission(fine_tuned_model_checkpoint: str, permission_id: str) -> dict[str, Any]:
        """Revoke one permission."""
        return grants.delete(fine_tuned_model_checkpoint, permission_id)

    return router
