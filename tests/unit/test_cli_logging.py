"""A CLI command that runs the embedded service logs to a file, never to the terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.stack import ROOT, base_env

# Run in a fresh interpreter: logging configuration is process-wide.
SCRIPT = """
import logging, sys, warnings
from pathlib import Path
from ftq.shared.observability.logging import configure_cli_logging, configure_logging

configure_cli_logging(Path(sys.argv[1]))
logging.getLogger("ftq.shared.jobs").info("job %s queued", "ftj_1")
logging.getLogger("kombu.connection").warning("No hostname was supplied")
chatty = logging.getLogger("celery.worker.strategy")
chatty.setLevel(logging.INFO)  # a library's own level: its INFO still stays out
chatty.info("Task received")
warnings.warn("a library's deprecation", UserWarning, stacklevel=1)
# The embedded worker reconfigures logging as it starts (Celery's setup_logging signal).
configure_logging("worker", level="WARNING")
logging.getLogger("ftq.services.worker").info("worker ready")
logging.getLogger("uvicorn.error").error("uvicorn went wrong")
print("done")
"""


def test_cli_logging_writes_ftq_logs_to_the_file_and_nothing_to_the_terminal(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "demo" / "ftq.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log_file)],
        cwd=ROOT,
        env=base_env(tmp_path, FTQ_LOG_LEVEL="INFO"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == "", "nothing logged on the terminal"
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    by_message = {r["message"]: r for r in records}
    assert by_message["job ftj_1 queued"]["level"] == "info"
    assert "worker ready" in by_message, "ftq's INFO survives the worker's WARNING level"
    assert "No hostname was supplied" in by_message, "third-party warnings kept, in the file"
    assert "uvicorn went wrong" in by_message
    assert "Task received" not in by_message, "third-party loggers stay at WARNING"
    assert any("a library's deprecation" in m for m in by_message), "warnings.warn captured"
    assert {r["service"] for r in records} == {"cli"}


def test_service_logging_stays_json_on_stderr(tmp_path: Path) -> None:
    script = (
        "import logging\n"
        "from ftq.shared.observability.logging import configure_logging\n"
        "configure_logging('worker', level='INFO')\n"
        "logging.getLogger('ftq.services.worker').info('worker ready')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stderr.strip())
    assert record["message"] == "worker ready" and record["service"] == "worker"
