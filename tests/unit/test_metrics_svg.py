"""The job metrics chart: well-formed SVG with both loss series, accuracy, axes, legend."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.charts.svg import nice_ticks, render_metrics_svg
from ftq.shared.jobs.schemas import MetricPoint
from tests.factories import auth, create_team, job_row

NS = {"svg": "http://www.w3.org/2000/svg"}


def _points(n: int = 30) -> list[MetricPoint]:
    return [
        MetricPoint(
            step=i,
            total_steps=n,
            train_loss=2.0 / i,
            train_mean_token_accuracy=1 - 1.0 / (i + 1),
            valid_loss=2.2 / i if i % 5 == 0 else None,
            valid_mean_token_accuracy=0.9 - 1.0 / (i + 1) if i % 5 == 0 else None,
        )
        for i in range(1, n + 1)
    ]


def _paths(svg: str) -> dict[str, list[str]]:
    root = ET.fromstring(svg)
    return {
        p.get("class", "").split()[-1]: p.get("d", "").split()
        for p in root.iterfind(".//svg:path", NS)
    }


def test_chart_draws_train_and_validation_loss_and_token_accuracy() -> None:
    svg = render_metrics_svg(_points(), "ftj_1 · ft:gpt-4o-mini")
    paths = _paths(svg)
    assert len(paths["train-loss"]) == 30  # one point per step
    assert len(paths["valid-loss"]) == 6  # reported every 5 steps, drawn as one line
    assert paths["valid-loss"][0].startswith("M") and paths["valid-loss"][1].startswith("L")
    assert {"train-accuracy", "valid-accuracy"} <= paths.keys()
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iterfind(".//svg:text", NS)]
    assert {"train loss", "validation loss", "train token accuracy", "step"} <= set(texts)
    assert len(root.findall(".//svg:text[@class='tick']", NS)) >= 10
    assert [g.get("data-panel") for g in root.iterfind("svg:g", NS)] == ["loss", "token accuracy"]


def test_lower_loss_is_drawn_higher_up_and_steps_left_to_right() -> None:
    paths = _paths(render_metrics_svg(_points(), "t"))
    coords = [tuple(map(float, c[1:].split(","))) for c in paths["train-loss"]]
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    assert xs == sorted(xs) and ys == sorted(ys)  # loss falls, so y (downwards) grows


def test_no_metrics_gives_a_valid_svg_with_a_message() -> None:
    root = ET.fromstring(render_metrics_svg([], "ftj_2 · queued"))
    assert root.findall(".//svg:path", NS) == []
    empty = root.find(".//svg:text[@class='empty']", NS)
    assert empty is not None and "No metrics yet" in (empty.text or "")


def test_titles_are_escaped_and_nan_is_skipped() -> None:
    points = [MetricPoint(step=1, train_loss=float("nan")), MetricPoint(step=2, train_loss=1.0)]
    svg = render_metrics_svg(points, "<script>&'\"")
    root = ET.fromstring(svg)
    assert root.find("svg:title", NS).text == "<script>&'\""  # type: ignore[union-attr]
    assert len(_paths(svg)["train-loss"]) == 1


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0.13, 2.4, 6) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert nice_ticks(1, 96, 8) == [0, 20, 40, 60, 80, 100]
    flat = nice_ticks(0.5, 0.5)
    assert flat[0] < 0.5 < flat[-1]


def test_metrics_svg_route_serves_the_teams_chart_only(
    client: TestClient, session: Session
) -> None:
    from ftq.shared.models import JobMetric, Team

    team = create_team(client, "svg-team")
    other = create_team(client, "svg-other")
    job = job_row(session, session.get(Team, team["id"]), status="running")
    for p in _points(12):
        session.add(JobMetric(job_id=job.id, **p.model_dump(exclude={"object"})))
    session.flush()
    response = client.get(f"/v1/jobs/{job.id}/metrics.svg", headers=auth(team))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    paths = _paths(response.text)
    assert len(paths["train-loss"]) == 12 and len(paths["valid-loss"]) == 2
    assert client.get(f"/v1/jobs/{job.id}/metrics.svg", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/jobs/{job.id}/metrics.svg").status_code == 401


def test_dashboard_page_is_served_without_secrets() -> None:
    from ftq.services.api.main import create_app

    with TestClient(create_app()) as http:
        page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "sessionStorage" in page.text and "#key=" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"


def test_a_single_step_is_still_visible() -> None:
    root = ET.fromstring(render_metrics_svg([MetricPoint(step=1, train_loss=1.2)], "t"))
    assert root.findall(".//svg:circle", NS) and root.findall(".//svg:path", NS)
