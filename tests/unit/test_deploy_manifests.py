"""The deployment files: docker-compose.yml, the kustomize base and overlay, the Dockerfile.

Everything here is offline: the Compose file is checked against the Compose specification
vendored by check-jsonschema, the kustomize renders (by `kubectl kustomize`, or a standalone
`kustomize`) against the Kubernetes JSON schemas shipped inside kubernetes-validate, and then
each file is read for the properties production relies on. Without kubectl or kustomize the
Kubernetes tests skip, unless FTQ_REQUIRE_SERVICES=1 makes a missing tool a failure.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "k8s"
K8S_TARGETS = ("base", "overlays/production", "overlays/ray")
# Custom resources kubernetes-validate has no schema for; their pod templates are validated.
CUSTOM_KINDS = {"RayCluster"}
RAY_VERSION = "2.60.0"
RAY_DASHBOARD_PORT = 8265

# A version kubernetes-validate carries schemas for (it ships 1.25 to 1.37 offline).
KUBERNETES_VERSION = "1.31.0"
IMAGE = "ghcr.io/ftq/ftq:0.1.0"
CELERY_APP = "ftq.services.worker.celery_app"
QUEUES = ("validate", "provider", "webhooks", "evals")
APP_SERVICES = ("migrate", "api", *(f"worker-{q}" for q in QUEUES), "beat", "flower")
# Customers' webhook URLs, and the provider's API (jobs and files; chat completions for evals).
INTERNET_COMPONENTS = {"worker-webhooks", "worker-provider", "worker-evals"}
SECRET_KEYS = {
    "FTQ_ADMIN_TOKEN",
    "FTQ_SECRET_KEY",
    "FTQ_DATABASE_URL",
    "OPENAI_API_KEY",
    "FTQ_LOCAL_SERVING_TOKEN",
}
# Values that are never a real secret (the app refuses several of them in production too).
PLACEHOLDERS = {
    "changeme",
    "change-me",
    "changethis",
    "replace",
    "dev-admin-token",
    "dev-secret-key",
}
SECRET_NAME = re.compile(r"(TOKEN|SECRET|API_KEY|PASSWORD)")
# The API's grace must outlast uvicorn's own graceful shutdown (--timeout-graceful-shutdown).
API_MIN_GRACE = 30
# A local (gpu) training run checkpoints and resumes after its lease, so its pod need not
# outlive its 24 h task limit; every other queue's pool must outlive its longest task.
RESUMABLE_QUEUES = {"gpu"}
# Addresses that stand for "the internet" and for each private range when the network
# policies are evaluated here; nothing is ever sent to them.
PUBLIC_ADDRESSES = ("8.8.8.8", "1.1.1.1", "151.101.1.1", "2606:4700:4700::1111")
PRIVATE_ADDRESSES = ("10.1.2.3", "172.20.0.5", "192.168.1.10", "169.254.169.254")


def _missing_tool(what: str) -> NoReturn:
    """Skip for a tool this machine lacks, or fail when FTQ_REQUIRE_SERVICES=1."""
    if os.environ.get("FTQ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (FTQ_REQUIRE_SERVICES=1)")
    pytest.skip(what)


def _venv_tool(name: str) -> str | None:
    """A console script from this interpreter's environment, else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def _option(command: list[str], flag: str) -> str | None:
    """The value after `flag` in an argv list."""
    return command[command.index(flag) + 1] if flag in command else None


@functools.cache
def _task_time_limits() -> dict[str, float]:
    """The longest hard time limit of the tasks routed to each queue, read from the Celery app."""
    from ftq.services.worker.celery_app import celery_app

    celery_app.loader.import_default_modules()
    longest: dict[str, float] = {}
    for name, task in celery_app.tasks.items():
        if name.startswith("celery."):
            continue
        queue = celery_app.amqp.router.route({}, name)["queue"].name
        limit = task.time_limit or celery_app.conf.task_time_limit
        assert limit, f"{name} has no hard time limit"
        longest[queue] = max(longest.get(queue, 0.0), float(limit))
    return longest


def _worker_min_grace(command: list[str]) -> float | None:
    """Seconds a worker consuming `-Q` must be given to finish its longest task on SIGTERM."""
    queues = (_option(command, "-Q") or "").split(",")
    limits = _task_time_limits()
    if not set(queues) - RESUMABLE_QUEUES:
        return None
    return max(limits.get(q, 0.0) for q in queues if q not in RESUMABLE_QUEUES)


def _seconds(duration: str | int) -> float:
    """A Compose duration ("10m", "1m30s", "90s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", str(duration))
    assert parts, f"unreadable duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# --------------------------------------------------------------------------- docker compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_compose_file_matches_the_compose_specification() -> None:
    tool = _venv_tool("check-jsonschema")
    if tool is None:
        _missing_tool("check-jsonschema is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    expected = {"postgres", "redis", "emulator", *APP_SERVICES}
    assert expected <= set(services), f"missing: {expected - set(services)}"


def test_compose_runs_exactly_one_beat(services: dict[str, dict[str, Any]]) -> None:
    beats = [name for name, s in services.items() if "beat" in _command(s)]
    assert beats == ["beat"]
    beat = services["beat"]
    assert _command(beat)[:4] == ["celery", "-A", CELERY_APP, "beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


@pytest.mark.parametrize("queue", QUEUES)
def test_compose_has_a_worker_pool_per_queue(
    services: dict[str, dict[str, Any]], queue: str
) -> None:
    command = _command(services[f"worker-{queue}"])
    assert command[:4] == ["celery", "-A", CELERY_APP, "worker"]
    assert _option(command, "-Q") == queue
    assert _option(command, "--prefetch-multiplier") == "1"
    assert _option(command, "-n") == f"{queue}@%h"
    assert int(_option(command, "--concurrency") or 0) >= 1


def test_compose_pools_consume_each_queue_once(services: dict[str, dict[str, Any]]) -> None:
    consumed = [
        q
        for s in services.values()
        if "worker" in _command(s)[3:4]
        for q in (_option(_command(s), "-Q") or "").split(",")
    ]
    assert len(consumed) == len(set(consumed)), consumed
    # A pool for a further queue (a `gpu` pool for the local provider) may join these.
    assert set(QUEUES) <= set(consumed)
    from ftq.services.worker.celery_app import QUEUES as APP_QUEUES

    assert set(consumed) <= set(APP_QUEUES), "a pool consumes a queue no task is routed to"


def test_compose_services_report_health_and_wait_for_it(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and spec.get("condition") in {
                "service_healthy",
                "service_completed_successfully",
            }, (name, dependency)
            assert dependency in services, (name, dependency)
    for queue in QUEUES:
        probe = " ".join(services[f"worker-{queue}"]["healthcheck"]["test"])
        assert "inspect ping" in probe and f"{queue}@$$HOSTNAME" in probe
    for name in ("worker-provider", "worker-evals"):
        emulator = services[name]["depends_on"]["emulator"]
        assert emulator == {"condition": "service_healthy", "required": False}


def test_compose_migrate_is_one_shot_and_gates_the_app(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert _command(migrate) == ["ftq", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", *(f"worker-{q}" for q in QUEUES), "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_compose_api(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    command = _command(api)
    assert command[:2] == ["uvicorn", "ftq.services.api.main:app"]
    assert _option(command, "--host") == "0.0.0.0"
    assert _option(command, "--port") == "8000"
    assert int(_option(command, "--workers") or 1) >= 2, "several uvicorn workers"
    assert "--proxy-headers" in command
    probe = " ".join(api["healthcheck"]["test"])
    assert "urllib" in probe and "/healthz" in probe and "curl" not in probe


def test_compose_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = " ".join(_command(redis))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert redis.get("volumes")


def test_compose_postgres(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(":/var/lib/postgresql/data" in v for v in postgres["volumes"])
    assert "ports" not in postgres and "ports" not in services["redis"]


def test_compose_emulator_is_opt_in(services: dict[str, dict[str, Any]]) -> None:
    emulator = services["emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert _command(emulator) == [
        "python",
        "-m",
        "ftq.services.emulator",
        "--host",
        "0.0.0.0",
        "--port",
        "8100",
    ]
    others = {
        name: s["profiles"]
        for name, s in services.items()
        if s.get("profiles") and name != "emulator"
    }
    assert others == {"ray-head": ["ray"], "worker-gpu": ["ray"]}, (
        "production services must start without a profile (Ray training is opt-in)"
    )


def test_compose_ray_profile_points_the_gpu_worker_at_the_ray_head(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    head = services["ray-head"]
    assert str(head["image"]).endswith(f"rayproject/ray:{RAY_VERSION}-py311}}")
    command = _command(head)
    assert command[:3] == ["ray", "start", "--head"] and "--block" in command
    assert f"--dashboard-port={RAY_DASHBOARD_PORT}" in command
    assert "--dashboard-host=0.0.0.0" in command
    assert f"127.0.0.1:{RAY_DASHBOARD_PORT}:{RAY_DASHBOARD_PORT}" in head["ports"]
    assert f":{RAY_DASHBOARD_PORT}/api/version" in " ".join(head["healthcheck"]["test"])

    worker = services["worker-gpu"]
    command = _command(worker)
    assert command[:4] == ["celery", "-A", CELERY_APP, "worker"]
    assert _option(command, "-Q") == "gpu" and _option(command, "-n") == "gpu@%h"
    env = _environment(worker)
    assert env["FTQ_LOCAL_BACKEND"] == "ray"
    assert env["FTQ_RAY_ADDRESS"] == f"http://ray-head:{RAY_DASHBOARD_PORT}"
    assert env["FTQ_LOCAL_ENABLED"] == "true", "the driver always runs local jobs"
    shared = {k: v for k, v in compose["x-ftq-env"].items() if k != "FTQ_LOCAL_ENABLED"}
    assert {k: v for k, v in env.items() if k in shared} == shared
    assert worker["depends_on"]["ray-head"] == {"condition": "service_healthy"}
    assert worker["build"]["args"]["FTQ_EXTRAS"] == "local"
    mounts = [str(v).split(":")[0] for v in worker["volumes"] + head["volumes"]]
    assert mounts == ["blobs", "blobs"], "the Ray Job reads and writes the same blob storage"


def test_compose_app_services_share_one_image_and_environment(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    shared = compose["x-ftq-env"]
    assert shared["FTQ_ENVIRONMENT"] == "production"
    assert shared["FTQ_DATABASE_URL"] == "postgresql+psycopg://ftq:ftq@postgres:5432/ftq"
    assert shared["FTQ_BROKER_URL"] == "redis://redis:6379/0"
    assert shared["FTQ_PROVIDER"] == "${FTQ_PROVIDER:-openai}"
    assert shared["FTQ_BLOB_DIR"] == "/data/blobs"
    assert "OPENAI_API_KEY" in shared
    images = {services[name]["image"] for name in (*APP_SERVICES, "emulator")}
    assert len(images) == 1
    for name in APP_SERVICES:
        assert _environment(services[name]) == shared, name
        assert services[name]["build"]["context"] == "."


def test_compose_blobs_volume_is_shared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "blobs" in compose["volumes"]
    blob_dir = compose["x-ftq-env"]["FTQ_BLOB_DIR"]
    for name in ("api", *(f"worker-{q}" for q in QUEUES)):
        mounts = [str(v).split(":") for v in services[name].get("volumes", [])]
        assert any(src == "blobs" and blob_dir.startswith(dst) for src, dst, *_ in mounts), name


def test_compose_bakes_in_no_placeholder_secret(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    shared = compose["x-ftq-env"]
    for key in ("FTQ_ADMIN_TOKEN", "FTQ_SECRET_KEY"):
        # `${VAR:?message}`: Compose refuses to start while the variable is unset or empty.
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", shared[key]), shared[key]
    for name, service in services.items():
        for key, value in _environment(service).items():
            if value is not None:
                assert str(value).strip().lower() not in PLACEHOLDERS, (name, key)
            # POSTGRES_PASSWORD: the bundled database publishes no port (see test above).
            if not SECRET_NAME.search(key) or key == "POSTGRES_PASSWORD":
                continue
            # A secret is passed through (no value) or interpolated with no fallback value.
            assert value is None or re.fullmatch(r"\$\{[A-Z0-9_]+(:?\?[^}]*)?\}", value), (
                f"{name}: {key} has a value baked in"
            )


def test_compose_stops_gracefully(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        assert services[name]["stop_signal"] == "SIGTERM", name
    assert _seconds(services["api"]["stop_grace_period"]) > API_MIN_GRACE
    pools = 0
    for name, service in services.items():
        command = _command(service)
        if command[3:4] == ["worker"] and (minimum := _worker_min_grace(command)) is not None:
            pools += 1
            grace = _seconds(service["stop_grace_period"])
            assert grace > minimum, f"{name}: {grace} s grace, tasks may run {minimum} s"
    assert pools >= len(QUEUES)


# --------------------------------------------------------------------------- kubernetes


@functools.cache
def _render(target: str) -> tuple[dict[str, Any], ...]:
    kubectl, kustomize = shutil.which("kubectl"), shutil.which("kustomize")
    if kubectl:
        command = [kubectl, "kustomize", str(K8S / target)]
    elif kustomize:
        command = [kustomize, "build", str(K8S / target)]
    else:
        _missing_tool("neither kubectl nor kustomize is on PATH to render k8s/")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=K8S_TARGETS)
def docs(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    return _render(request.param)


def _named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _workloads(docs: tuple[dict[str, Any], ...]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(d, spec) for d in docs if (spec := _pod_spec(d)) is not None]


def _pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    template = doc["spec"].get("jobTemplate", doc)["spec"]["template"]
    return template["metadata"]["labels"]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches these labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and key in labels and labels[key] in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def test_every_manifest_validates_against_the_kubernetes_schemas(
    docs: tuple[dict[str, Any], ...],
) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _missing_tool("kubernetes-validate is not installed (pip install -e '.[dev]')")
    errors = []
    for doc in (d for d in docs if d["kind"] not in CUSTOM_KINDS):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_everything_lives_in_the_ftq_namespace(docs: tuple[dict[str, Any], ...]) -> None:
    namespace = _named(docs, "Namespace", "ftq")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "ftq", doc["metadata"]["name"]


def test_every_container_runs_the_pinned_image(docs: tuple[dict[str, Any], ...]) -> None:
    images = {c["image"] for _, spec in _workloads(docs) for c in _containers(spec)}
    assert images == {IMAGE}


def test_beat_is_a_single_replica(docs: tuple[dict[str, Any], ...]) -> None:
    beats = [
        d
        for d, spec in _workloads(docs)
        if any("beat" in c.get("command", []) for c in spec["containers"])
    ]
    assert [d["metadata"]["name"] for d in beats] == ["ftq-beat"]
    beat = beats[0]
    assert beat["kind"] == "Deployment"
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "celery",
        "-A",
        CELERY_APP,
        "beat",
    ]
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in hpas}
    assert "ftq-beat" not in scaled


@pytest.mark.parametrize("queue", QUEUES)
def test_a_worker_deployment_and_autoscaler_per_queue(
    docs: tuple[dict[str, Any], ...], queue: str
) -> None:
    name = f"ftq-worker-{queue}"
    deployment = _named(docs, "Deployment", name)
    assert _pod_labels(deployment)["app.kubernetes.io/component"] == f"worker-{queue}"
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:4] == ["celery", "-A", CELERY_APP, "worker"]
    assert _option(command, "-Q") == queue
    assert _option(command, "--prefetch-multiplier") == "1"
    assert _option(command, "-n") == f"{queue}@%h"
    hpa = _named(docs, "HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The HPA owns the replica count; a fixed one would be reset on every apply.
    assert "replicas" not in deployment["spec"]


def test_api_deployment_service_budget_and_autoscaler(docs: tuple[dict[str, Any], ...]) -> None:
    api = _named(docs, "Deployment", "ftq-api")
    labels = _pod_labels(api)
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["uvicorn", "ftq.services.api.main:app"]
    assert "--proxy-headers" in container["command"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    service = _named(docs, "Service", "ftq-api")
    assert _selects({"matchLabels": service["spec"]["selector"]}, labels)
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()

    budget = _named(docs, "PodDisruptionBudget", "ftq-api")
    assert _selects(budget["spec"]["selector"], labels)

    hpa = _named(docs, "HorizontalPodAutoscaler", "ftq-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ftq-api"
    assert hpa["spec"]["minReplicas"] >= 2, "one api pod cannot survive a disruption"


def test_every_container_has_resources_probes_and_a_hardened_context(
    docs: tuple[dict[str, Any], ...],
) -> None:
    for doc, spec in _workloads(docs):
        name = doc["metadata"]["name"]
        pod_security = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, name
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in _containers(spec):
            where = f"{name}/{container['name']}"
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(section, {})), (where, section)
            if doc["kind"] == "Deployment":
                assert "livenessProbe" in container, where
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("privileged", False) is False, where
            run_as_non_root = context.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
            assert run_as_non_root is True, where
            assert context.get("runAsUser", pod_security.get("runAsUser", 1)) != 0, where
            seccomp = context.get("seccompProfile", pod_security.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in empty_dirs, f"{where}: /tmp needs an emptyDir"


def test_grace_periods_outlast_the_longest_task(docs: tuple[dict[str, Any], ...]) -> None:
    pools = set()
    for doc, spec in _workloads(docs):
        component = _pod_labels(doc)["app.kubernetes.io/component"]
        command = spec["containers"][0].get("command", [])
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if component == "api":
            assert grace > API_MIN_GRACE
        if command[3:4] == ["worker"] and (minimum := _worker_min_grace(command)) is not None:
            pools.add(component)
            assert grace > minimum, f"{component}: {grace} s grace, tasks may run {minimum} s"
    assert {f"worker-{q}" for q in QUEUES} <= pools


def test_task_time_limits_stay_below_the_visibility_timeout() -> None:
    from ftq.services.worker.celery_app import VISIBILITY_TIMEOUT

    for queue, limit in _task_time_limits().items():
        if queue not in RESUMABLE_QUEUES:
            assert limit < VISIBILITY_TIMEOUT, (queue, limit)


def test_migrations_run_as_a_job(docs: tuple[dict[str, Any], ...]) -> None:
    job = _named(docs, "Job", "ftq-migrate")
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["command"] == ["ftq", "migrate"]
    assert spec["restartPolicy"] in {"Never", "OnFailure"}
    assert job["spec"]["backoffLimit"] >= 1


def _egress_rules(docs: tuple[dict[str, Any], ...], labels: dict[str, str]) -> list[dict]:
    rules: list[dict] = []
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else [])
        if "Egress" in types and _selects(spec["podSelector"], labels):
            rules.extend(spec.get("egress") or [])
    return rules


def _peer_allows(peer: dict[str, Any], address: str) -> bool:
    """Whether an ipBlock peer lets traffic to this address out (other peers stay in-cluster)."""
    block = peer.get("ipBlock")
    if block is None:
        return False
    ip = ipaddress.ip_address(address)
    cidr = ipaddress.ip_network(block["cidr"])
    if ip.version != cidr.version or ip not in cidr:
        return False
    return not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))


def _rule_reaches(rule: dict[str, Any], address: str) -> bool:
    peers = rule.get("to")
    return not peers or any(_peer_allows(p, address) for p in peers)


def _rule_allows_port(rule: dict[str, Any], port: int, protocol: str = "TCP") -> bool:
    ports = rule.get("ports")
    return not ports or any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    )


def test_network_policies_keep_the_internet_to_the_workers_that_call_out(
    docs: tuple[dict[str, Any], ...],
) -> None:
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(
        p["podSelector"] == {} and "Egress" in p.get("policyTypes", []) and not p.get("egress")
        for p in policies
    ), "no default-deny egress policy for the namespace"

    components = set()
    for doc, _ in _workloads(docs):
        labels = _pod_labels(doc)
        component = labels["app.kubernetes.io/component"]
        components.add(component)
        rules = _egress_rules(docs, labels)
        internet = [r for r in rules if any(_rule_reaches(r, a) for a in PUBLIC_ADDRESSES)]
        if component in INTERNET_COMPONENTS:
            assert internet, f"{component} cannot reach the internet"
            for rule in internet:
                for address in PRIVATE_ADDRESSES:
                    assert not _rule_reaches(rule, address), (component, address)
        else:
            assert not internet, f"{component} may reach the internet"
        assert any(_rule_allows_port(r, 53, "UDP") for r in rules), f"{component}: no DNS"
        for port in (5432, 6379):
            assert any(_rule_allows_port(r, port) for r in rules), (component, port)
    assert components >= INTERNET_COMPONENTS


def test_only_the_api_accepts_connections(docs: tuple[dict[str, Any], ...]) -> None:
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    assert any(
        p["podSelector"] == {} and "Ingress" in p.get("policyTypes", []) and not p.get("ingress")
        for p in policies
    ), "no default-deny ingress policy for the namespace"
    for doc, _ in _workloads(docs):
        labels = _pod_labels(doc)
        opened = [
            p
            for p in policies
            if "Ingress" in p.get("policyTypes", [])
            and p.get("ingress")
            and _selects(p["podSelector"], labels)
        ]
        component = labels["app.kubernetes.io/component"]
        assert bool(opened) == (component in {"api", "serving"}), labels
        if component == "serving":  # from ftq's own callers of `local:` models, on its port
            for policy in opened:
                for rule in policy["ingress"]:
                    assert [p["port"] for p in rule["ports"]] == [8600]
                    callers = rule["from"][0]["podSelector"]["matchExpressions"][0]["values"]
                    assert set(callers) <= {"api", "worker-evals", "worker-gpu"}


def test_configuration_comes_from_the_configmap_and_the_secret(
    docs: tuple[dict[str, Any], ...],
) -> None:
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    assert len(configmaps) == 1
    config = configmaps[0]
    assert config["data"]["FTQ_ENVIRONMENT"] == "production"
    assert config["data"]["FTQ_BLOB_DIR"] == "/data/blobs"
    assert not [k for k in config["data"] if SECRET_NAME.search(k)], "secrets in the ConfigMap"
    for _, spec in _workloads(docs):
        for container in spec["containers"]:
            sources = container.get("envFrom", [])
            assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
            assert {"secretRef": {"name": "ftq-secrets"}} in sources
            for env in container.get("env", []):
                assert not (SECRET_NAME.search(env["name"]) and "value" in env), env["name"]


def _secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = dict(secret.get("stringData") or {})
    for key, encoded in (secret.get("data") or {}).items():
        values[key] = base64.b64decode(encoded).decode()
    return values


def test_the_secret_template_holds_only_placeholders() -> None:
    docs = _render("base")
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == ["ftq-secrets"]
    values = _secret_values(secrets[0])
    assert set(values) == SECRET_KEYS
    for key, value in values.items():
        assert value == "" or "REPLACE" in value, f"{key} looks like a real secret"


def test_the_app_refuses_the_secret_template_in_production() -> None:
    settings = pytest.importorskip("ftq.shared.settings")
    values = _secret_values(_named(_render("base"), "Secret", "ftq-secrets"))
    with pytest.raises(ValueError):
        settings.Settings(
            environment="production",
            admin_token=values["FTQ_ADMIN_TOKEN"],
            secret_key=values["FTQ_SECRET_KEY"],
            database_url=values["FTQ_DATABASE_URL"],
            broker_url="redis://redis:6379/0",
        )


def test_the_production_overlay_never_ships_the_secret_template() -> None:
    docs = _render("overlays/production")
    assert [d for d in docs if d["kind"] == "Secret"] == []


def _ray_templates(cluster: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group, pod template) of a RayCluster's head and worker groups."""
    groups = [("head", cluster["spec"]["headGroupSpec"]["template"])]
    groups += [(g["groupName"], g["template"]) for g in cluster["spec"]["workerGroupSpecs"]]
    return groups


def test_the_ray_overlay_has_a_kuberay_cluster_with_a_head_and_a_gpu_group() -> None:
    docs = _render("overlays/ray")
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["namespace"] == "ftq"
    assert cluster["spec"]["rayVersion"] == RAY_VERSION
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["rayStartParams"]["num-gpus"] == "0", "the head trains nothing"
    (head_container,) = head["template"]["spec"]["containers"]
    assert RAY_DASHBOARD_PORT in {p["containerPort"] for p in head_container["ports"]}
    (gpu,) = [g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert 1 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    (worker,) = gpu["template"]["spec"]["containers"]
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert gpu["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for _, template in _ray_templates(cluster):
        for container in template["spec"]["containers"]:
            image, _, tag = container["image"].partition(":")
            assert image == "rayproject/ray" and tag.startswith(f"{RAY_VERSION}-"), container
        mounts = {
            m["mountPath"]: m["name"]
            for c in template["spec"]["containers"]
            for m in c["volumeMounts"]
        }
        claims = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
            for v in template["spec"]["volumes"]
        }
        assert claims[mounts["/data"]] == "ftq-blobs", "checkpoints live in the blob storage"


def test_the_ray_pods_validate_and_are_hardened() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (cluster,) = [d for d in _render("overlays/ray") if d["kind"] == "RayCluster"]
    for group, template in _ray_templates(cluster):
        pod = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"ftq-ray-{group}", "namespace": "ftq"},
            "template": template,
        }
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, group
            assert context["capabilities"]["drop"] == ["ALL"], group
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), group


def test_the_ray_overlay_serves_local_models_from_a_gpu_serving_worker() -> None:
    docs = _render("overlays/ray")
    serving = _named(docs, "Deployment", "ftq-serving")
    spec = serving["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "ftq.services.worker.serving"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = _named(docs, "Service", "ftq-serving")
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(serving))
    (port,) = service["spec"]["ports"]
    assert ports[port["targetPort"]] == 8600
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["FTQ_LOCAL_SERVING_URL"] == f"http://ftq-serving:{port['port']}"
    api_labels = _pod_labels(_named(docs, "Deployment", "ftq-api"))
    assert any(_rule_allows_port(r, 8600) for r in _egress_rules(docs, api_labels))


def test_the_app_refuses_a_placeholder_serving_token_in_production() -> None:
    settings = pytest.importorskip("ftq.shared.settings")
    for token in ("REPLACE", "short"):
        with pytest.raises(ValueError, match="FTQ_LOCAL_SERVING_TOKEN"):
            settings.Settings(
                environment="production",
                admin_token="a" * 32,
                secret_key="b" * 32,
                database_url="postgresql+psycopg://u:p@db:5432/ftq",
                broker_url="redis://redis:6379/0",
                local_serving_url="http://ftq-serving:8600",
                local_serving_token=token,
            )


def test_the_ray_overlay_points_the_driver_at_the_head_service() -> None:
    docs = _render("overlays/ray")
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    # KubeRay names the head's Service `<cluster>-head-svc`.
    head_service = f"{cluster['metadata']['name']}-head-svc"
    assert config["data"]["FTQ_LOCAL_BACKEND"] == "ray"
    assert config["data"]["FTQ_RAY_ADDRESS"] == f"http://{head_service}:{RAY_DASHBOARD_PORT}"
    assert config["data"]["FTQ_LOCAL_CUDA"] == "true", "the API checks QLoRA against Ray's GPUs"
    assert config["data"]["FTQ_ENVIRONMENT"] == "production", "merged into production's config"
    driver = _named(docs, "Deployment", "ftq-worker-gpu")
    (container,) = driver["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"], "Ray's workers hold the GPUs"
    labels = _pod_labels(driver)
    out = [r for r in _egress_rules(docs, labels) if _rule_allows_port(r, RAY_DASHBOARD_PORT)]
    head_labels = cluster["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    assert any(
        _selects(peer["podSelector"], head_labels)
        for rule in out
        for peer in rule.get("to", [])
        if "podSelector" in peer
    ), "the driver may reach the head's Job API"
    ingress = [
        rule
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and "Ingress" in d["spec"].get("policyTypes", [])
        and _selects(d["spec"]["podSelector"], head_labels)
        for rule in d["spec"].get("ingress") or []
    ]
    assert any(
        _rule_allows_port(rule, RAY_DASHBOARD_PORT)
        and any(
            _selects(peer.get("podSelector", {"matchLabels": {"x": "y"}}), labels)
            for peer in rule.get("from", [])
        )
        for rule in ingress
    ), "the head accepts the driver's Job API calls"


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined, comments dropped), per stage."""
    instructions: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instructions.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    final = _dockerfile_stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
    assert user.isdigit() and int(user) > 0


def test_dockerfile_is_multi_stage_on_python_slim_without_build_tools() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0][1].split()[0] == "python:3.11-slim"
    final = stages[-1]
    final_runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|\bmake\b", final_runs)
    assert any(k == "COPY" and rest.startswith("--from=") for k, rest in final)
    build_runs = " ".join(rest for s in stages[:-1] for k, rest in s if k == "RUN")
    installs = re.search(r"pip install (\S+ )*\"?\.\[([\w,]+)\]\"?(\s|$)", build_runs)
    assert installs, "the project is not installed"
    assert "server" in installs.group(2).split(","), "the image lacks the server extra"


def test_dockerfile_environment_and_default_command() -> None:
    final = _dockerfile_stages()[-1]
    env: dict[str, str] = {}
    for keyword, rest in final:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    commands = [rest for keyword, rest in final if keyword == "CMD"]
    assert commands
    assert json.loads(commands[-1])[:2] == ["uvicorn", "ftq.services.api.main:app"]


def test_dockerfile_copies_only_what_exists_and_ignores_the_rest() -> None:
    for stage in _dockerfile_stages():
        for keyword, rest in stage:
            if keyword != "COPY" or rest.startswith("--from="):
                continue
            sources = [s for s in shlex.split(rest)[:-1] if not s.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".git", ".venv", ".ftq", "tests"} <= ignored


def test_the_image_install_ships_every_module_and_data_file(tmp_path: Path) -> None:
    """Build the wheel the way the Dockerfile does, from exactly what it copies."""
    build = next(s for s in _dockerfile_stages() if any(k == "COPY" for k, _ in s))
    context = tmp_path / "src"
    context.mkdir()
    for keyword, rest in build:
        if keyword != "COPY" or rest.startswith("--from="):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin, context / source, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(origin, context / source)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", str(context), "--no-deps"]
    result = subprocess.run(
        [*pip_wheel, "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import zipfile

    (wheel,) = (tmp_path / "dist").glob("ftq-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        f"ftq/{path.relative_to(context)}"
        for package in ("shared", "services", "migrations")
        for path in (context / package).rglob("*")
        if path.is_file() and path.suffix in {".py", ".html", ".mako", ".jsonl", ".ini", ".json"}
    }
    assert wanted, "nothing copied"
    assert not wanted - shipped, f"missing from the image: {sorted(wanted - shipped)}"
    entry_points = next(n for n in shipped if n.endswith(".dist-info/entry_points.txt"))
    assert "ftq = ftq.services.cli.main:" in zipfile.ZipFile(wheel).read(entry_points).decode()
