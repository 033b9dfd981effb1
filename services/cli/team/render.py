"""Tables and one-liners the team CLI prints for people."""

from __future__ import annotations

from typing import Any

from rich.table import Table

STATUS_COLOURS = {
    "succeeded": "green",
    "ready": "green",
    "completed": "green",
    "failed": "red",
    "invalid": "red",
    "cancelled": "yellow",
    "running": "cyan",
}


def status(value: str | None) -> str:
    """A status word in its colour."""
    colour = STATUS_COLOURS.get(value or "", "white")
    return f"[{colour}]{value}[/{colour}]"


def number(value: float | None, digits: int = 4) -> str:
    """A float or a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


def datasets_table(items: list[dict[str, Any]]) -> Table:
    """The team's datasets."""
    table = Table(
        title="Datasets", title_justify="left", box=None, pad_edge=False, padding=(0, 2, 0, 0)
    )
    for column in ("id", "name", "purpose", "status", "n", "size", "created"):
        table.add_column(column, overflow="fold", **_wrap(column))
    for d in items:
        table.add_row(
            d["id"],
            d.get("name") or "",
            d.get("purpose") or "",
            status(d.get("status")),
            str(d.get("n_examples") if d.get("n_examples") is not None else "-"),
            _size(d.get("bytes") or 0),
            _when(d.get("created_at")),
        )
    return table


def jobs_table(items: list[dict[str, Any]]) -> Table:
    """The team's jobs."""
    table = Table(
        title="Jobs", title_justify="left", box=None, pad_edge=False, padding=(0, 2, 0, 0)
    )
    for column in ("id", "status", "model", "fine-tuned model", "created"):
        table.add_column(column, overflow="fold", **_wrap(column))
    for j in items:
        table.add_row(
            j["id"],
            status(j["status"]),
            j["model"],
            j.get("fine_tuned_model") or "-",
            _when(j.get("created_at")),
        )
    return table


def eval_table(ev: dict[str, Any]) -> Table:
    """Models side by side: items scored, score and its 95% interval, errors, difference to the
    first model with its paired interval, items improved/regressed, and whether that is noise."""
    table = Table(
        title=f"Eval {ev.get('id', '')} on {ev.get('dataset', '')}: grader {ev.get('grader')}",
        title_justify="left",
    )
    for column, justify in (
        ("model", "left"),
        ("n", "right"),
        ("score", "right"),
        ("95% CI", "right"),
        ("errors", "right"),
        ("diff", "right"),
        ("diff 95% CI", "right"),
        ("items +/-", "right"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    results = ev.get("results") or []
    base = results[0].get("score") if results else None
    for i, r in enumerate(results):
        score = r.get("score")
        delta = "" if i == 0 or score is None or base is None else f"{score - base:+.4f}"
        comparison = r.get("comparison") or {}
        diff_ci, moved, note = "", "", ""
        if i and comparison:
            diff_ci = _span(comparison.get("interval"), signed=True)
            moved = f"+{comparison.get('improved', 0)}/-{comparison.get('regressed', 0)}"
            if comparison.get("interval") is not None:
                note = (
                    "[green]beyond noise[/green]"
                    if comparison.get("significant")
                    else "[yellow]difference within noise[/yellow]"
                )
        table.add_row(
            r["model"],
            str(r.get("n", "-")),
            number(score),
            _span(r.get("interval")),
            str(r.get("errors", 0)),
            delta,
            diff_ci,
            moved,
            note,
        )
    return table


def _span(bounds: list[float] | None, *, signed: bool = False) -> str:
    """An interval as low-high, or "low to high" for signed differences (a dash when none)."""
    if not bounds:
        return "-"
    if signed:
        return f"{bounds[0]:+.3f} to {bounds[1]:+.3f}"
    return f"{bounds[0]:.3f}-{bounds[1]:.3f}"


def _when(value: str | None) -> str:
    """An ISO timestamp as month-day hour:minute."""
    return (value or "")[5:16].replace("T", " ")


def _size(n_bytes: int) -> str:
    """A file size for people."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"


def _wrap(column: str) -> dict[str, Any]:
    """Long names fold with a readable minimum width; short columns never wrap."""
    if column in ("name", "model", "fine-tuned model"):
        return {"min_width": 14}
    return {"no_wrap": True}
