"""Run examples/openai_sdk_quickstart.py against a running ftq with the SDK's strict types on."""

from __future__ import annotations

import subprocess
import sys

from ftq.services.cli.client import FtqClient
from tests.e2e.stack import ROOT, Stack, base_env

EXAMPLE = ROOT / "examples" / "openai_sdk_quickstart.py"
# The example is the guide's code as is; strict response validation is switched on from outside
# so every answer it gets is checked by the SDK's own types.
STRICT_RUNNER = (
    "import functools, runpy, sys, openai\n"
    "openai.OpenAI = functools.partial(openai.OpenAI, _strict_response_validation=True)\n"
    "runpy.run_path(sys.argv[1], run_name='__main__')\n"
)


def run_quickstart(stack: Stack, model: str | None = None, timeout: float = 600) -> str:
    """The example's output; fails the test with its stderr and the stack's logs."""
    team = FtqClient(stack.url, "dev-admin-token").create_team("quickstart")
    env = base_env(stack.workdir / "client")
    env.update({"FTQ_BASE_URL": f"{stack.url}/v1", "FTQ_API_KEY": team["api_key"]["key"]})
    if model:
        env["FTQ_MODEL"] = model
    result = subprocess.run(
        [sys.executable, "-c", STRICT_RUNNER, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{stack.logs()}"
    return result.stdout
