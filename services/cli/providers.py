"""`ftq providers`: the installed provider plugins and what each supports, as a Markdown table."""

from __future__ import annotations

import typer
from rich.console import Console

from ftq.shared.providers.plugins import Capabilities

COLUMNS = ("provider", "methods", "LoRA / full", "pause", "checkpoints", "webhooks", "limits")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _row(name: str, caps: Capabilities) -> str:
    methods = ", ".join("SFT" if m == "supervised" else m.upper() for m in caps.methods)
    tuning = " + ".join("LoRA" if t == "lora" else t for t in caps.tuning)
    cells = (
        f"`{name}`",
        methods,
        tuning,
        _yes(caps.pause),
        _yes(caps.checkpoints),
        _yes(caps.webhooks),
        caps.limits,
    )
    return "| " + " | ".join(cells) + " |"


def providers_table() -> str:
    """The Markdown table of every installed provider (the README's providers table)."""
    from ftq.shared.providers.registry import plugins

    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    rows = [_row(name, plugin.capabilities) for name, plugin in plugins().items()]
    return "\n".join([head, *rows])


def providers_command() -> None:
    """Print the installed providers and what each supports (Markdown)."""
    Console(soft_wrap=True).print(providers_table(), markup=False, highlight=False)
    raise typer.Exit(0)
