"""The team dashboard (one static page over the REST API) and job charts."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.shared.charts.svg import best_checkpoint_marker, render_metrics_svg
from ftq.shared.jobs import service

router = APIRouter(tags=["dashboard"])
PAGE = Path(__file__).with_name("dashboard.html")


@lru_cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    """The dashboard page; it asks for the team key in the browser and calls the API itself."""
    return HTMLResponse(
        _page(),
        headers={
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
            "content-security-policy": (
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
            ),
        },
    )


@router.get(
    "/v1/jobs/{job_id}/metrics.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
    tags=["jobs"],
)
def metrics_svg(job_id: str, session: SessionDep, team: TeamDep) -> Response:
    """Train and validation loss and token accuracy per step, drawn as SVG."""
    job = service.get(session, team, job_id)
    title = f"{job.id} · {job.status}"
    marks = best_checkpoint_marker(job.best_checkpoint)
    svg = render_metrics_svg(service.metrics(session, team, job_id), title, marks)
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})
