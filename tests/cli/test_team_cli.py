"""The team CLI driven as a user would, in subprocesses, against a running embedded `ftq up`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ftq.services.cli.client import FtqClient
from tests.e2e.stack import BIN, ROOT, Stack, start_embedded
from tests.factories import chat_jsonl

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class Cli:
    """Runs `ftq` with its own config dir and no FTQ_* settings from the test process."""

    url: str
    key: str
    config_home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTQ_")}
        env.update({"XDG_CONFIG_HOME": str(self.config_home), "COLUMNS": "200", **extra})
        return env

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "ftq"), *args],
            cwd=ROOT,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One embedded server for the module."""
    running = start_embedded(tmp_path_factory.mktemp("cli-stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cli(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A team, logged in through `ftq login`."""
    team = FtqClient(stack.url, "dev-admin-token").create_team("cli-team")
    runner = Cli(stack.url, team["api_key"]["key"], tmp_path_factory.mktemp("config"))
    done = runner.run("login", "--url", stack.url, "--key", runner.key)
    assert done.returncode == 0, done.stderr
    assert "cli-team" in done.stdout
    return runner


@pytest.fixture(scope="module")
def dataset(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ready training dataset uploaded with `ftq datasets upload --json`."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_bytes(chat_jsonl(60))
    uploaded = cli.json("datasets", "upload", str(path))
    assert uploaded["status"] == "ready" and uploaded["report"]["n_examples"] == 60
    return dict(uploaded)


def test_login_stores_the_key_privately_and_never_prints_it(cli: Cli) -> None:
    config = cli.config_home / "ftq" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": cli.url, "api_key": cli.key}
    again = cli.run("login", "--url", cli.url, "--key", cli.key, "--json")
    assert again.returncode == 0 and cli.key not in again.stdout + again.stderr
    assert json.loads(again.stdout)["team"]["name"] == "cli-team"


def test_a_refused_key_exits_3_with_the_servers_message_and_saves_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    other = Cli(cli.url, "ftq_wrong", tmp_path)
    done = other.run("login", "--url", cli.url, "--key", "ftq_sk_not_a_real_key")
    assert done.returncode == 3
    assert "401" in done.stderr and "ftq_sk_not_a_real_key" not in done.stderr + done.stdout
    assert not (tmp_path / "ftq" / "config.json").exists()


def test_without_login_commands_exit_2_and_env_overrides_work(cli: Cli, tmp_path: Path) -> None:
    fresh = Cli(cli.url, cli.key, tmp_path)
    done = fresh.run("jobs", "list")
    assert done.returncode == 2 and "ftq login" in done.stderr
    done = fresh.run("jobs", "list", "--json", FTQ_URL=cli.url, FTQ_API_KEY=cli.key)
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), list)
    assert fresh.run("jobs", "create", "--model", MODEL).returncode == 2  # missing --training


def test_upload_shows_progress_and_the_report_and_invalid_data_exits_1(
    cli: Cli, tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(chat_jsonl(30, offset=500))
    done = cli.run("datasets", "upload", str(good))
    assert done.returncode == 0, done.stderr
    assert "uploading good.jsonl" in done.stdout and "30 examples" in done.stdout
    assert "ready" in done.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n' * 12)
    done = cli.run("datasets", "upload", str(bad))
    assert done.returncode == 1, done.stderr
    assert "invalid" in done.stdout and "line" in done.stdout
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    done = cli.run("datasets", "upload", str(garbage))
    assert done.returncode == 3 and "422" in done.stderr and "line 1" in done.stderr
    listed = cli.json("datasets", "list")
    assert {"good.jsonl", "bad.jsonl"} <= {d["name"] for d in listed}


def test_create_watch_and_list_a_job_to_its_fine_tuned_model(
    cli: Cli, dataset: dict[str, Any]
) -> None:
    job = cli.json(
        "jobs",
        "create",
        "--model",
        MODEL,
        "--training",
        dataset["id"],
        "--validation-split",
        "0.2",
        "--epochs",
        "2",
        "--suffix",
        "cli",
    )
    assert job["id"].startswith("ftj_") and job["validation_split"] == 0.2
    watched = cli.run("jobs", "watch", job["id"], "--interval", "0.3", "--timeout", "240")
    assert watched.returncode == 0, watched.stderr + watched.stdout
    assert "succeeded" in watched.stdout
    assert f"ft:{MODEL}:" in watched.stdout.splitlines()[-1]
    assert "train loss" in watched.stdout
    final = cli.json("jobs", "watch", job["id"])
    assert final["status"] == "succeeded" and final["fine_tuned_model"] in watched.stdout
    listed = cli.json("jobs", "list")
    assert job["id"] in [j["id"] for j in listed]
    table = cli.run("jobs", "list")
    assert table.returncode == 0 and job["id"] in table.stdout


def test_a_failed_job_exits_1_with_its_reason(cli: Cli, dataset: dict[str, Any]) -> None:
    faults = f"{cli.url}/emulator/_emulator/faults"
    fail_with = {"code": "training_diverged", "message": "loss became NaN"}
    httpx.post(faults, json={"fail_jobs_with": fail_with}, trust_env=False).raise_for_status()
    try:
        job = cli.json("jobs", "create", "--model", MODEL, "--training", dataset["id"])
        watched = cli.run("jobs", "watch", job["id"], "--interval", "0.3", "--timeout", "240")
    finally:
        httpx.post(faults, json={}, trust_env=False).raise_for_status()
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "failed" in watched.stdout and "loss became NaN" in watched.stdout


def test_api_errors_exit_3_with_the_servers_message(cli: Cli) -> None:
    done = cli.run("jobs", "create", "--model", MODEL, "--training", "ds_missing")
    assert done.returncode == 3
    assert "404" in done.stderr and "ds_missing" in done.stderr
    done = cli.run("jobs", "watch", "ftj_nope")
    assert done.returncode == 3 and "not_found" in done.stderr


def test_unreachable_server_exits_3(cli: Cli) -> None:
    done = cli.run("jobs", "list", FTQ_URL="http://127.0.0.1:9", FTQ_API_KEY=cli.key)
    assert done.returncode == 3 and "cannot talk to http://127.0.0.1:9" in done.stderr
    assert cli.key not in done.stderr


def _choice_jsonl(n: int) -> bytes:
    """Multiple-choice chat examples whose answer is a letter (AR-LSAT style)."""
    lines = []
    for i in range(n):
        prompt = f"Question {i}: which option is right?\nA. {i}\nB. {i + 1}\nC. {i + 2}\nD. {i + 3}"
        record = {
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": "ABCD"[i % 4]},
            ]
        }
        lines.append(json.dumps(record) + "\n")
    return "".join(lines).encode()


def test_a_job_with_an_eval_and_evals_run_show_models_side_by_side(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "choices.jsonl"
    path.write_bytes(_choice_jsonl(24))
    data = cli.json("datasets", "upload", str(path))
    args = ["--model", MODEL, "--training", data["id"], "--suffix", "mc", "--eval-grader"]
    created = cli.run("jobs", "create", *args, "choice", "--eval-dataset", data["id"], "--watch")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "grader choice" in created.stdout and "diff" in created.stdout
    job = next(j for j in cli.json("jobs", "list") if j["suffix"] == "mc")
    assert job["eval"]["status"] == "completed"
    scores = {r["model"]: r["score"] for r in job["eval"]["results"]}
    assert scores[job["fine_tuned_model"]] == 1.0 and scores[MODEL] < 1.0

    ev = cli.json(
        "evals", "run", "--dataset", data["id"], "--model", MODEL,
        "--model", job["fine_tuned_model"], "--grader", "choice", "--max-items", "12",
    )  # fmt: skip
    assert ev["status"] == "completed" and ev["id"].startswith("ev_")
    assert [r["model"] for r in ev["results"]] == [MODEL, job["fine_tuned_model"]]
    assert all(r["n"] == 12 and r["errors"] == 0 for r in ev["results"])
    assert ev["results"][1]["score"] == 1.0
    table = cli.run("evals", "show", ev["id"])
    assert table.returncode == 0
    rows = [line for line in table.stdout.splitlines() if MODEL in line]
    assert len(rows) == 2 and "1.0000" in rows[1]
    bad = cli.run("evals", "run", "--dataset", data["id"], "--model", MODEL, "--grader", "nope")
    assert bad.returncode == 2
    missing = cli.run("evals", "run", "--dataset", "ds_missing", "--model", MODEL)
    assert missing.returncode == 3 and "ds_missing" in missing.stderr


def test_sweeps_create_waits_for_the_winner_and_show_prints_the_trials(
    cli: Cli, dataset: dict[str, Any]
) -> None:
    args = ["--model", MODEL, "--training-dataset", dataset["id"]]
    args += ["--eval-dataset", dataset["id"], "--grader", "contains", "--vary", "n_epochs=1,2"]
    done = cli.run("sweeps", "create", *args, "--timeout", "240")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "2 trials" in done.stdout and "winner" in done.stdout and "★" in done.stdout
    sweep_id = done.stdout.split("sweep ", 1)[1].split()[0]
    shown = cli.json("sweeps", "show", sweep_id)
    assert shown["status"] == "completed" and shown["best_job_id"]
    assert sorted(t["hyperparameters"]["n_epochs"] for t in shown["trials"]) == [1, 2]
    table = cli.run("sweeps", "show", sweep_id)
    assert table.returncode == 0 and all(t["job_id"] in table.stdout for t in shown["trials"])
    bad = cli.run("sweeps", "create", *args[:-1], "n_epochs=one")
    assert bad.returncode != 0 and "n_epochs" in bad.stderr + bad.stdout
