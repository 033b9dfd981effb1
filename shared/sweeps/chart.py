"""The SVG chart of a sweep: each trial's eval score as a bar, the winner highlighted."""

from __future__ import annotations

from html import escape

from ftq.shared.sweeps.schemas import Sweep

WIDTH, HEIGHT, PAD, BAR_GAP = 640, 320, 40, 8


def render_svg(sweep: Sweep) -> str:
    """Score per trial (0 to 1), labelled with its hyperparameters; stopped trials hatched grey."""
    count = max(len(sweep.trials), 1)
    slot = (WIDTH - 2 * PAD) / count
    plot = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="10">',
        f"<title>{escape(f'Sweep {sweep.id}: eval score per trial')}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#333"/>',
    ]
    for index, trial in enumerate(sweep.trials):
        score = trial.score or 0.0
        height = plot * max(0.0, min(score, 1.0))
        x = PAD + index * slot + BAR_GAP / 2
        colour = "#2a7" if trial.job_id == sweep.best_job_id else "#69c"
        if trial.stopped_early:
            colour = "#bbb"
        label = ", ".join(f"{k}={v}" for k, v in trial.hyperparameters.items())
        shown = "—" if trial.score is None else f"{trial.score:.3f}"
        parts += [
            f'<rect x="{x:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{slot - BAR_GAP:.1f}" '
            f'height="{height:.1f}" fill="{colour}"><title>{escape(trial.job_id)}</title></rect>',
            f'<text x="{x:.1f}" y="{HEIGHT - PAD - height - 4:.1f}">{escape(shown)}</text>',
            f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}">{escape(label)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts)
