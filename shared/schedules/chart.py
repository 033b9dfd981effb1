"""The SVG chart of a schedule: each run's score, the baseline and its tolerance band."""

from __future__ import annotations

from html import escape

from ftq.shared.schedules.schemas import EvalSchedule, EvalScheduleRun

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 320, 48, 24, 36, 40
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _y(score: float) -> float:
    return TOP + PLOT_H * (1.0 - max(0.0, min(score, 1.0)))


def _x(index: int, count: int) -> float:
    return LEFT + (PLOT_W * (index + 0.5) / count if count else PLOT_W / 2)


def render_svg(schedule: EvalSchedule, runs: list[EvalScheduleRun]) -> str:
    """Score per run (0 to 1, oldest left); baseline dashed, band shaded, regressions red."""
    title = f"Schedule {schedule.id}: {schedule.model} score per run"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="13">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts += [
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>',
            f'<text x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">{tick:g}</text>',
        ]
    if schedule.baseline is not None:
        parts += _baseline(schedule.baseline, schedule.tolerance)
    scored = [(i, run) for i, run in enumerate(runs) if run.score is not None]
    if not scored:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            'font-size="14">No scored run yet.</text>'
        )
    else:
        points = " ".join(f"{_x(i, len(runs)):.1f},{_y(r.score or 0):.1f}" for i, r in scored)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#69c" stroke-width="2"/>')
        parts += [_point(i, len(runs), run) for i, run in scored]
    parts.append("</svg>")
    return "\n".join(parts)


def _baseline(baseline: float, tolerance: float) -> list[str]:
    top, bottom = _y(baseline), _y(baseline - tolerance)
    return [
        f'<rect class="tolerance" x="{LEFT}" y="{top:.1f}" width="{PLOT_W}" '
        f'height="{bottom - top:.1f}" fill="#fde7c8" opacity="0.7"/>',
        f'<line class="baseline" x1="{LEFT}" y1="{top:.1f}" x2="{WIDTH - RIGHT}" y2="{top:.1f}" '
        'stroke="#e68a00" stroke-dasharray="6 4"/>',
        f'<text x="{WIDTH - RIGHT}" y="{top - 4:.1f}" text-anchor="end">'
        f"baseline {baseline:.3f} (tolerance {tolerance:g})</text>",
    ]


def _point(index: int, count: int, run: EvalScheduleRun) -> str:
    colour = "#d62728" if run.regressed else "#2a7"
    label = f"{run.slot.isoformat()}: {run.score:.3f}" + (" regressed" if run.regressed else "")
    return (
        f'<circle class="run{" regressed" if run.regressed else ""}" '
        f'cx="{_x(index, count):.1f}" cy="{_y(run.score or 0):.1f}" r="4" fill="{colour}">'
        f"<title>{escape(label)}</title></circle>"
    )
