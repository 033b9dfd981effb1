"""Local training on a real Ray cluster (CPU, gloo): Ray Jobs followed like a provider's jobs.

One two-CPU Ray head per module; each test follows a run the way the `local.train` task does
(FTQ_LOCAL_BACKEND=ray), with Ray Train running two DDP workers on the tiny model.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftq.shared.serving import free_port
from ftq.shared.settings import reset_settings
from tests.local.helpers import build_tiny, jsonl, require_local_stack, units_rows, wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head with two CPUs (its dashboard URL), stopped by its own process group."""
    require_local_stack()
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ftqray")  # short: Ray's socket paths have a length limit
    dashboard = free_port()
    # Token authentication on, with this module's own token (Ray's default for new local
    # clusters; a ~/.ray/auth_token left by anything else must not decide the outcome).
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {key: os.environ.get(key) for key in auth}
    os.environ.update(auth)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            f"--port={free_port()}",
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        from ftq.shared.providers.local import ray_cluster

        def answers() -> bool:
            ray_cluster.forget()
            with _settings(FTQ_RAY_ADDRESS=url):
                return ray_cluster.resources() is not None

        wait_for(answers, 90, "the Ray head", interval=1.0)
        with _settings(FTQ_RAY_ADDRESS=url):
            _wait_for_the_job_agent(url)
        yield url
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # the group: the head's GCS, raylet, workers
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_the_job_agent(url: str) -> None:
    """Run one trivial Ray Job: the head answers before its job agent takes submissions."""
    from ftq.shared.providers.local import ray_jobs

    jobs = ray_jobs.client()
    sid = ray_jobs.submit_entrypoint(jobs, "true", f"warm-{secrets.token_hex(4)}")
    wait_for(lambda: str(jobs.get_job_status(sid)) in ray_jobs.DONE, 120, "a first Ray Job")


class _settings:
    """Environment variables set (and settings re-read) for a block."""

    def __init__(self, **values: str) -> None:
        self.values, self.saved = values, {k: os.environ.get(k) for k in values}

    def __enter__(self) -> None:
        os.environ.update(self.values)
        reset_settings()

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


@pytest.fixture(scope="module")
def on_ray(ray_head: str, engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FTQ_LOCAL_BACKEND=ray against the module's head, with the tiny model configured."""
    tiny = build_tiny(tmp_path_factory.mktemp("tiny") / "model")
    values = {
        "FTQ_LOCAL_BACKEND": "ray",
        "FTQ_RAY_ADDRESS": ray_head,
        "FTQ_RAY_POLL_SECONDS": "0.3",
        "FTQ_RAY_MAX_FAILURES": "2",
        "FTQ_LOCAL_MODELS": json.dumps({"tiny": str(tiny)}),
        "FTQ_LOCAL_TORCH_THREADS": "1",
        "FTQ_LOCAL_REPORT_SECONDS": "0.2",
        "FTQ_LOCAL_LEASE_SECONDS": "20",
    }
    with _settings(**values):
        yield ray_head


def _new_run(rows: int, **params: Any) -> str:
    from ftq.shared.db import session_scope
    from ftq.shared.ids import new_id
    from ftq.shared.providers.base import JobSpec
    from ftq.shared.providers.local import service
    from ftq.shared.providers.local.provider import LocalProvider

    data = Path(tempfile.mkdtemp(prefix="ftq-ray-data")) / "units.jsonl"
    data.write_bytes(jsonl(units_rows(rows)))
    file_id = LocalProvider().upload_file(data, f"units-{new_id('f')}.jsonl")
    method = {"type": "supervised", "supervised": {"hyperparameters": params}}
    spec = JobSpec(new_id("job"), "tiny", file_id, method=method, seed=7)
    with session_scope() as session:
        return service.create(session, spec).id


class Follower(threading.Thread):
    """The `local.train` task's body (ray_jobs.follow) in a thread; its outcome when done."""

    def __init__(self, run_id: str) -> None:
        super().__init__(daemon=True)
        self.run_id, self.outcome = run_id, None

    def run(self) -> None:
        from ftq.shared.providers.local import ray_jobs

        self.outcome = ray_jobs.follow(self.run_id)


def _run(run_id: str) -> Any:
    from ftq.shared.db import session_scope
    from ftq.shared.providers.local import repository

    with session_scope() as session:
        return repository.get(session, run_id)


def _events(run_id: str) -> list[Any]:
    from ftq.shared.db import session_scope
    from ftq.shared.providers.local import repository

    with session_scope() as session:
        return repository.events_after(session, run_id, 0)


def _checkpoints(run_id: str) -> list[Any]:
    from ftq.shared.db import session_scope
    from ftq.shared.providers.local import repository

    with session_scope() as session:
        return repository.checkpoints(session, run_id)


def _started(run_id: str) -> list[Any]:
    return [e for e in _events(run_id) if e.message.startswith("Training started on")]


def test_two_gloo_workers_train_one_job_and_a_redelivered_submit_finds_it(on_ray: str):
    from ray.job_submission import JobSubmissionClient

    from ftq.shared.providers.local import ray_cluster, ray_jobs

    run_id = _new_run(40, n_epochs=3, batch_size=2, learning_rate_multiplier=10, num_workers=2)
    follower = Follower(run_id)
    follower.start()
    follower.join(timeout=150)
    assert follower.outcome == "succeeded", [e.message for e in _events(run_id)]

    events = _events(run_id)
    described = next(e for e in events if e.message.startswith("Hyperparameters"))
    assert described.data["world_size"] == 2
    started = _started(run_id)
    assert len(started) == 1 and started[0].data["world_size"] == 2
    assert len(set(started[0].data["pids"])) == 2  # two processes, one per rank
    finished = next(e for e in events if e.message.startswith("Training finished"))
    ranks = finished.data["ranks"]
    # 40 examples / 2 ranks / batch 2 = 10 steps an epoch on each rank, 3 epochs
    assert [r["steps"] for r in ranks] == [30, 30]
    assert ranks[0]["adapter"] == ranks[1]["adapter"]  # DDP kept the adapters identical
    losses = [e.data["train_loss"] for e in events if e.type == "metrics" and e.data]
    assert len(losses) == 30
    assert sum(losses[-5:]) < sum(losses[:5]) * 0.7, losses
    kept = _checkpoints(run_id)
    assert [c.step for c in kept] == [10, 20, 30]
    assert all((Path(c.path) / "optimizer.pt").is_file() for c in kept)  # in blob storage
    assert all(str(ray_jobs.storage_path()) in c.path for c in kept)
    run = _run(run_id)
    assert run.status == "succeeded" and run.attempt == 1
    assert run.fine_tuned_model.startswith("local:tiny::")

    jobs = JobSubmissionClient(on_ray, headers=ray_cluster.auth_headers())
    sid = ray_jobs.submission_id(run_id, 1)
    assert ray_jobs.submit(jobs, run_id, 1) == sid  # redelivered: no error, the same job
    assert [j.submission_id for j in jobs.list_jobs()].count(sid) == 1  # and no twin
    wait_for(lambda: jobs.get_job_status(sid).value == "SUCCEEDED", 60, "the Ray Job's end")
    assert ray_jobs.follow(run_id) == "skipped"  # a redelivered task finds the run finished


def test_a_killed_ray_worker_restarts_the_group_from_its_last_checkpoint(on_ray: str):
    run_id = _new_run(60, n_epochs=5, batch_size=1, learning_rate_multiplier=10, num_workers=2)
    follower = Follower(run_id)
    follower.start()
    wait_for(lambda: _checkpoints(run_id), 120, "the first checkpoint", interval=0.1)
    rank1 = _started(run_id)[0].data["pids"][1]
    os.kill(rank1, signal.SIGKILL)
    follower.join(timeout=150)
    assert follower.outcome == "succeeded", [e.message for e in _events(run_id)]

    started = _started(run_id)
    assert started[0].message == "Training started on cpu (from step 0)"
    assert len(started) == 2, [e.message for e in started]
    resumed_at = int(started[1].message.rsplit(" ", 1)[1].rstrip(")"))
    assert resumed_at >= 30  # from a checkpoint (one an epoch: 30 steps), not from step 0
    assert rank1 not in started[1].data["pids"]  # a new worker group
    steps = sorted({e.data["step"] for e in _events(run_id) if e.type == "metrics" and e.data})
    assert steps == list(range(1, 151))
    assert _run(run_id).attempt == 1  # Ray Train restarted inside the job: no resubmission


def test_cancel_stops_both_ranks_within_seconds(on_ray: str):
    from ftq.shared.db import session_scope
    from ftq.shared.providers.local import service

    run_id = _new_run(200, n_epochs=10, batch_size=1, num_workers=2)
    follower = Follower(run_id)
    follower.start()
    wait_for(lambda: _run(run_id).step >= 5, 120, "training steps")
    pids = _started(run_id)[0].data["pids"]
    with session_scope() as session:
        service.request_cancel(session, run_id)
    asked = time.monotonic()
    wait_for(lambda: not any(_alive(pid) for pid in pids), 30, "both ranks to stop")
    assert time.monotonic() - asked < 15
    follower.join(timeout=30)
    assert follower.outcome == "cancelled"
    run = _run(run_id)
    assert run.status == "cancelled" and run.step < run.total_steps
    before = run.step
    time.sleep(1.0)
    assert _run(run_id).step == before


def test_a_request_the_cluster_can_never_hold_is_a_422_naming_the_field(on_ray: str):
    from ftq.shared.errors import Unprocessable
    from ftq.shared.providers.local import hyper

    def refusal(**params: Any) -> Unprocessable:
        method = {"type": "supervised", "supervised": {"hyperparameters": params}}
        with pytest.raises(Unprocessable) as caught:
            hyper.check_scale(method)
        assert caught.value.status_code == 422
        return caught.value

    assert refusal(num_workers=3).param == "method.hyperparameters.num_workers"
    assert "2" in str(refusal(num_workers=3))  # the cluster's two CPUs
    assert refusal(gpus_per_worker=1).param == "method.hyperparameters.gpus_per_worker"
    hyper.check_scale({"type": "supervised", "supervised": {"hyperparameters": {"num_workers": 2}}})


class FakeJobs:
    """A Ray job client over a dict of submission id -> status (the cluster's memory)."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.submitted: list[str] = []
        self.stopped: list[str] = []

    def submit_job(self, *, entrypoint: str, submission_id: str, **_: Any) -> str:
        if submission_id in self.known:
            raise RuntimeError(f"Job with submission_id {submission_id} already exists.")
        self.known[submission_id] = "RUNNING"
        self.submitted.append(submission_id)
        return submission_id

    def get_job_status(self, sid: str) -> str:
        if sid not in self.known:
            raise RuntimeError(f"Request failed with status code 404: Job {sid} does not exist.")
        return self.known[sid]

    def stop_job(self, sid: str) -> bool:
        self.stopped.append(sid)
        self.known[sid] = "STOPPED"
        return True


@pytest.fixture
def fake_ray(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJobs]:
    """ray_jobs against FakeJobs and a two-CPU cluster view (no Ray started)."""
    from ftq.shared.providers.local import ray_cluster, ray_jobs

    jobs = FakeJobs()
    monkeypatch.setattr(ray_jobs, "client", lambda: jobs)
    monkeypatch.setattr(ray_cluster, "resources", lambda: ray_cluster.Resources(2, 0, 2, 0))
    with _settings(FTQ_LOCAL_BACKEND="ray", FTQ_RAY_POLL_SECONDS="0.05", FTQ_RAY_MAX_ATTEMPTS="3"):
        yield jobs


def test_a_lost_ray_job_is_resubmitted_as_the_next_attempt_never_beside_a_live_one(
    fake_ray: FakeJobs,
):
    run_id = _new_run(10, num_workers=2)
    follower = Follower(run_id)
    follower.start()
    first, second, third = (f"{run_id}-a{n}" for n in (1, 2, 3))
    wait_for(lambda: fake_ray.submitted == [first], 10, "the first submission")
    fake_ray.known[first] = "FAILED"  # its driver died: the run never finished
    wait_for(lambda: fake_ray.submitted == [first, second], 10, "the second attempt")
    assert _run(run_id).attempt == 2
    del fake_ray.known[second]  # the cluster forgot it (a new head)
    wait_for(lambda: fake_ray.submitted == [first, second, third], 10, "the third attempt")
    time.sleep(0.3)
    assert fake_ray.submitted == [first, second, third]  # a live attempt is never doubled
    del fake_ray.known[third]
    follower.join(timeout=10)
    assert follower.outcome == "failed"  # FTQ_RAY_MAX_ATTEMPTS spent
    run = _run(run_id)
    assert run.status == "failed" and run.attempt == 3
    assert "after 3 attempts" in run.error_message
    messages = [e.message for e in _events(run_id)]
    assert (
        f"Resubmitted (Ray Job {first} is failed without the run finishing) as Ray Job "
        f"{second}" in messages
    )
    assert f"Resubmitted (the Ray cluster lost Ray Job {second}) as Ray Job {third}" in messages


def test_a_restarted_follower_reattaches_to_the_live_job_and_cancels_it(fake_ray: FakeJobs):
    from ftq.shared.db import session_scope
    from ftq.shared.providers.local import repository, service
    from ftq.shared.timeutil import utcnow

    run_id = _new_run(10)
    sid = f"{run_id}-a1"
    fake_ray.known[sid] = "RUNNING"  # trained on while the worker that submitted it died
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with session_scope() as session:
        run = repository.lock(session, run_id)
        run.status, run.attempt = "running", 1
        run.lease_owner, run.heartbeat_at = f"{socket.gethostname()}:{dead.pid}:x", utcnow()
    with session_scope() as session:  # the provider sweep sees the follower's pid gone
        assert run_id in service.revive(session)
    assert any("following it again" in e.message for e in _events(run_id))
    follower = Follower(run_id)
    follower.start()
    wait_for(lambda: any("Following Ray Job" in e.message for e in _events(run_id)), 10, "attach")
    assert fake_ray.submitted == []  # the same job, no twin
    with session_scope() as session:
        service.request_cancel(session, run_id)
    follower.join(timeout=10)
    assert follower.outcome == "cancelled" and fake_ray.stopped == [sid]
    assert _run(run_id).status == "cancelled"


def test_post_jobs_refuses_a_scale_it_cannot_train_with_a_422_naming_the_field(
    client: Any, session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from ftq.shared.datasets import service as datasets
    from ftq.shared.providers.local import ray_cluster
    from tests.factories import auth, chat_jsonl, create_team, upload

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setattr(ray_cluster, "resources", lambda: ray_cluster.Resources(4, 0, 2, 0))
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])

    def post(**hyper: Any) -> Any:
        body = {
            "model": "mine",
            "provider": "local",
            "training_dataset": dataset["id"],
            "method": {"type": "supervised", "hyperparameters": hyper},
        }
        return client.post("/v1/jobs", json=body, headers=auth(team))

    def refused(**hyper: Any) -> dict[str, Any]:
        answer = post(**hyper)
        assert answer.status_code == 422, answer.text
        return dict(answer.json()["error"])

    local = {"FTQ_LOCAL_ENABLED": "true", "FTQ_LOCAL_MODELS": f"mine={folder}"}
    with _settings(**local, FTQ_LOCAL_BACKEND="inprocess"):
        error = refused(num_workers=2)
        assert error["param"] == "method.hyperparameters.num_workers"
        assert "FTQ_LOCAL_BACKEND=ray" in error["message"]
    with _settings(**local, FTQ_LOCAL_BACKEND="ray", FTQ_RAY_CPUS_PER_WORKER="1"):
        error = refused(num_workers=5)
        assert error["param"] == "method.hyperparameters.num_workers"
        assert "needs 5 CPUs" in error["message"] and "has 4" in error["message"]
        assert refused(gpus_per_worker=1)["param"] == "method.hyperparameters.gpus_per_worker"
        assert post(num_workers=4).status_code == 201
