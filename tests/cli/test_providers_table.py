"""The README's providers table is what `ftq providers` prints from the installed plugins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ftq.services.cli.providers import providers_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_matches_the_installed_providers() -> None:
    table = providers_table()
    assert table in README.read_text(), (
        "README.md's providers table is stale: paste `ftq providers`"
    )


def test_ftq_providers_prints_one_row_per_installed_provider() -> None:
    command = [sys.executable, "-m", "ftq.services.cli.main", "providers"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    assert names[:4] == ["emulator", "openai", "azure-openai", "local"]
    assert "| `local` | SFT, DPO | LoRA |" in out
