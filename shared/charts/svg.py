"""A job's training curves as a standalone SVG: loss per step above, token accuracy below."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ftq.shared.jobs.schemas import MetricPoint

WIDTH, HEIGHT = 760, 520
LEFT, RIGHT, TOP, GAP, BOTTOM = 64, 24, 44, 56, 44
FONT = "font-family='system-ui, sans-serif' fill='#333'"
TICK = " class='tick'"
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    """One line: a label, a colour, a CSS class and (step, value) points (None: no value)."""

    label: str
    colour: str
    css: str
    points: list[tuple[int, float | None]]
    dashed: bool = False

    @property
    def values(self) -> list[float]:
        """The non-missing values."""
        return [v for _, v in self.points if v is not None and math.isfinite(v)]


@dataclass(frozen=True)
class Marker:
    """A labelled vertical line at one step (e.g. the best checkpoint)."""

    step: int
    label: str
    css: str = "marker"
    colour: str = "#9467bd"


def best_checkpoint_marker(best: dict[str, Any] | None) -> list[Marker]:
    """The marker of a job's best_checkpoint ({model, step, score}), none without one."""
    if not best or not isinstance(best.get("step"), int):
        return []
    score = best.get("score")
    shown = f" {score:.3f}" if isinstance(score, int | float) else ""
    return [Marker(best["step"], f"best checkpoint{shown}", "marker best-checkpoint")]


@dataclass(frozen=True)
class Panel:
    """A rectangle of the chart with its y label and series."""

    title: str
    top: float
    height: float
    series: list[Series]


def _text(
    x: float, y: float, body: str, *, size: int = 12, anchor: str = "start", extra: str = ""
) -> str:
    """A text element; body is escaped here."""
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' font-size='{size}' {FONT}"
        f"{extra}>{escape(body)}</text>"
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.4g}"


def render_metrics_svg(
    metrics: Sequence[MetricPoint], title: str, markers: Sequence[Marker] = ()
) -> str:
    """The SVG document for a job's metrics (an empty state when there are none)."""
    width_plot = WIDTH - LEFT - RIGHT
    panel_height = (HEIGHT - TOP - GAP - BOTTOM) / 2
    loss = Panel("loss", TOP, panel_height, _loss_series(metrics))
    accuracy = Panel("token accuracy", TOP + panel_height + GAP, panel_height, _acc_series(metrics))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label={quoteattr(title)}>",
        f"<title>{escape(title)}</title>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
        _text(LEFT, 22, title, size=15, extra=" font-weight='600'"),
    ]
    steps = [m.step for m in metrics]
    if not any(s.values for s in loss.series + accuracy.series):
        message = "No metrics yet: the provider has not reported a step."
        parts.append(
            _text(WIDTH / 2, HEIGHT / 2, message, size=16, anchor="middle", extra=" class='empty'")
        )
    else:
        x_ticks = nice_ticks(min(steps), max(steps), 8)
        for panel in (loss, accuracy):
            parts.extend(_panel(panel, x_ticks, width_plot))
        parts.extend(_markers(markers, x_ticks, width_plot))
    parts.append("</svg>")
    return "\n".join(parts)


def _markers(markers: Sequence[Marker], x_ticks: list[float], width_plot: float) -> list[str]:
    """Dashed vertical lines through both panels at the marked steps, labelled at the top."""
    x0, x1 = x_ticks[0], x_ticks[-1]
    out = []
    for marker in markers:
        x = LEFT + (marker.step - x0) / ((x1 - x0) or 1) * width_plot
        out.append(
            f"<g class={quoteattr(marker.css)} data-step='{marker.step}'>"
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{TOP - 4}' y2='{HEIGHT - BOTTOM}' "
            f"stroke='{marker.colour}' stroke-width='1.5' stroke-dasharray='3 3'/>"
            + _text(x + 4, TOP + 12, f"{marker.label} (step {marker.step})", size=11)
            + "</g>"
        )
    return out


def _loss_series(metrics: Sequence[MetricPoint]) -> list[Series]:
    return [
        Series("train loss", "#1f77b4", "train-loss", [(m.step, m.train_loss) for m in metrics]),
        Series(
            "validation loss", "#d62728", "valid-loss", [(m.step, m.valid_loss) for m in metrics]
        ),
    ]


def _acc_series(metrics: Sequence[MetricPoint]) -> list[Series]:
    return [
        Series(
            "train token accuracy",
            "#2ca02c",
            "train-accuracy",
            [(m.step, m.train_mean_token_accuracy) for m in metrics],
        ),
        Series(
            "validation token accuracy",
            "#ff7f0e",
            "valid-accuracy",
            [(m.step, m.valid_mean_token_accuracy) for m in metrics],
            dashed=True,
        ),
    ]


def _panel(panel: Panel, x_ticks: list[float], width_plot: float) -> list[str]:
    values = [v for s in panel.series for v in s.values]
    y_ticks = nice_ticks(min(values), max(values), 6) if values else [0.0, 1.0]
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    bottom = panel.top + panel.height

    def sx(step: float) -> float:
        return LEFT + (step - x0) / ((x1 - x0) or 1) * width_plot

    def sy(value: float) -> float:
        return bottom - (value - y0) / ((y1 - y0) or 1) * panel.height

    out = [f"<g class='panel' data-panel={quoteattr(panel.title)}>"]
    out += _axes(panel, x_ticks, y_ticks, sx, sy, width_plot)
    for series in panel.series:
        d = _path(series.points, sx, sy)
        if d.count("M") == 1 and "L" not in d:  # a lone point would be an invisible path
            x, y = d[1:].split(",")
            out.append(f"<circle cx='{x}' cy='{y}' r='3' fill='{series.colour}'/>")
        if d:
            dash = " stroke-dasharray='6 4'" if series.dashed else ""
            out.append(
                f"<path class='series {series.css}' d='{d}' fill='none' "
                f"stroke='{series.colour}' stroke-width='2'{dash}/>"
            )
    out += _legend(panel, width_plot)
    out.append("</g>")
    return out


def _axes(
    panel: Panel,
    x_ticks: list[float],
    y_ticks: list[float],
    sx: Scale,
    sy: Scale,
    width_plot: float,
) -> list[str]:
    bottom = panel.top + panel.height
    out = [
        f"<rect x='{LEFT}' y='{panel.top}' width='{width_plot}' height='{panel.height}' "
        "fill='none' stroke='#999'/>",
        _text(LEFT - 48, panel.top - 8, panel.title, extra=" font-weight='600'"),
    ]
    for tick in y_ticks:
        y = sy(tick)
        out.append(
            f"<line x1='{LEFT}' x2='{LEFT + width_plot}' y1='{y:.1f}' y2='{y:.1f}' "
            "stroke='#eee'/>" + _text(LEFT - 6, y + 4, _label(tick), anchor="end", extra=TICK)
        )
    for tick in x_ticks:
        x = sx(tick)
        out.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{bottom}' y2='{bottom + 5}' stroke='#999'/>"
            + _text(x, bottom + 18, _label(tick), anchor="middle", extra=TICK)
        )
    out.append(_text(LEFT + width_plot, bottom + 34, "step", anchor="end"))
    return out


def _legend(panel: Panel, width_plot: float) -> list[str]:
    out = []
    x = LEFT + width_plot
    for series in reversed(panel.series):
        width = 7 * len(series.label) + 30
        x -= width
        dash = " stroke-dasharray='6 4'" if series.dashed else ""
        out.append(
            f"<g class='legend'><line x1='{x}' x2='{x + 20}' y1='{panel.top - 12}' "
            f"y2='{panel.top - 12}' stroke='{series.colour}' stroke-width='3'{dash}/>"
            + _text(x + 24, panel.top - 8, series.label)
            + "</g>"
        )
    return out


def _path(points: list[tuple[int, float | None]], sx: Scale, sy: Scale) -> str:
    # Missing values are skipped, not gaps: validation loss is often reported every few steps.
    kept = [(step, v) for step, v in points if v is not None and math.isfinite(v)]
    return " ".join(
        f"{'L' if i else 'M'}{sx(step):.1f},{sy(value):.1f}" for i, (step, value) in enumerate(kept)
    )
