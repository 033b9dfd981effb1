"""The light client (`pip install ftq`) works without the server's packages installed.

Each command runs in a subprocess whose imports of the server-only distributions fail, as they
would in an environment that installed `ftq` without the `server` extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVER_ONLY = [
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "psycopg",
    "alembic",
    "celery",
    "kombu",
    "redis",
    "openai",
    "cryptography",
    "prometheus_client",
    "sacrebleu",
    "rouge_score",
    "multipart",
    "python_multipart",
    "torch",
]

BLOCKER = f"""
import sys
BLOCKED = set({SERVER_ONLY!r})
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


@pytest.fixture
def light_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTQ_")}
    return {**env, "PYTHONPATH": str(site), "HOME": str(tmp_path), "NO_COLOR": "1"}


def _ftq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ftq.services.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_blocker_really_hides_the_server(light_env: dict[str, str]) -> None:
    probe = [sys.executable, "-c", "import fastapi"]
    result = subprocess.run(probe, env=light_env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "fastapi" in result.stderr


def test_offline_validate_convert_and_help_run_without_the_server(
    light_env: dict[str, str], tmp_path: Path
) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _ftq(light_env, "--help").returncode == 0
    validated = _ftq(light_env, "validate", str(data), "--json")
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["n_examples"] == 12
    for group in ("login", "jobs", "datasets", "evals"):
        shown = _ftq(light_env, group, "--help")
        assert shown.returncode == 0, (group, shown.stderr)


def test_team_commands_reach_the_api_with_httpx_only(light_env: dict[str, str]) -> None:
    env = {**light_env, "FTQ_URL": "http://127.0.0.1:9", "FTQ_API_KEY": "ftq_sk_unused"}
    listed = _ftq(env, "jobs", "list")
    assert "ModuleNotFoundError" not in listed.stderr, listed.stderr
    assert listed.returncode == 3, listed.stdout + listed.stderr  # an HTTP error, not an import


@pytest.mark.parametrize("command", ["up", "demo", "migrate", "config"])
def test_server_commands_say_in_one_line_what_to_install(
    light_env: dict[str, str], command: str
) -> None:
    result = _ftq(light_env, command)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'ftq[server]'" in lines[0], lines
    assert "Traceback" not in result.stderr
