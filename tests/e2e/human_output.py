"""What a person reads on the terminal after an `ftq` command: no log lines, no bare braces."""

from __future__ import annotations

import json
from pathlib import Path

# Installed as sitecustomize in a demo's subprocess: at exit, the heavy modules it had imported.
IMPORT_PROBE = """
import atexit, os, sys

def _write_heavy_modules():
    heavy = {"torch", "transformers", "peft", "trl", "datasets", "accelerate"}
    found = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    with open(os.environ["FTQ_TEST_IMPORT_PROBE"], "w") as out:
        out.write("\\n".join(found))

atexit.register(_write_heavy_modules)
"""


def probe_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PYTHONPATH and the variable that make a subprocess report its heavy imports at exit."""
    site = tmp_path / "probe-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IMPORT_PROBE)
    report = tmp_path / "heavy-imports.txt"
    return {"PYTHONPATH": str(site), "FTQ_TEST_IMPORT_PROBE": str(report)}, report


def assert_for_people(stdout: str, stderr: str) -> None:
    """No JSON log line, no kombu message, no line that is only braces, on either stream."""
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        assert "No hostname was supplied" not in text, f"kombu's warning on {stream}"
        for line in text.splitlines():
            bare = line.strip()
            assert not bare.startswith(("{", "}")), f"{stream} line {line!r}"
            assert bare not in ("{ }", "{}", "[]"), f"{stream} line {line!r}"
            assert not _is_json_object(bare), f"{stream} line {line!r}"


def assert_logs_in_file(log_file: Path) -> list[dict[str, object]]:
    """The command's log file: every line one JSON object, the embedded server's among them."""
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    assert any(r["logger"] == "ftq.access" for r in records), "the API's access log"
    return records


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
