"""Every emulator response of a realistic session checked against OpenAI's own contract.

Each JSON body is validated against the response schema of OpenAI's OpenAPI description
(`$FTQ_SHARED_DATA/openai-openapi-finetuning.yaml`) and parsed with the SDK's pydantic types;
so are the answers the SDK's AzureOpenAI client gets under `/openai`, and the bodies of the
`fine_tuning.job.*` webhooks the emulator sends (against the spec's `webhooks`).
The emulator copies real OpenAI behaviour where it differs from the spec; those "seen"
differences (OPENAI.md) are asserted exactly and then normalised in `SeenDeviations` before
validation, so any other difference fails.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml
from openai.types import FileDeleted, FileObject
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ftq.services.emulator.app import create_app
from ftq.services.emulator.azure import is_azure, openai_path
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / os.environ.get("FTQ_SHARED_DATA", "../shared/data")  # relative: to the repo root
SPEC_FILE = DATA / "openai-openapi-finetuning.yaml"
SPEC_URI = "urn:openai-openapi"
ERROR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {"type": "string", "minLength": 1},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
SDK_TYPES: dict[str, type[BaseModel]] = {
    "createFile": FileObject,
    "retrieveFile": FileObject,
    "listFiles": FileObject,
    "deleteFile": FileDeleted,
    "createFineTuningJob": FineTuningJob,
    "retrieveFineTuningJob": FineTuningJob,
    "cancelFineTuningJob": FineTuningJob,
    "pauseFineTuningJob": FineTuningJob,
    "resumeFineTuningJob": FineTuningJob,
    "listPaginatedFineTuningJobs": FineTuningJob,
    "listFineTuningEvents": FineTuningJobEvent,
    "listFineTuningJobCheckpoints": FineTuningJobCheckpoint,
}
LISTS = {
    "listFiles",
    "listPaginatedFineTuningJobs",
    "listFineTuningEvents",
    "listFineTuningJobCheckpoints",
}
FINE_TUNING_WEBHOOKS = (
    FineTuningJobSucceededWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobCancelledWebhookEvent,
)
SPEED = 3000.0
AZURE_VERSION = "2025-04-01-preview"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"contract-test-secret").decode()


def _spec_or_skip() -> dict[str, Any]:
    """The OpenAPI description; skip without the shared data unless services are required."""
    if not SPEC_FILE.exists():
        if os.environ.get("FTQ_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{SPEC_FILE} is missing and FTQ_REQUIRE_SERVICES=1")
        pytest.skip(f"shared data not found at {DATA}")
    spec: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text())
    return spec


@dataclass
class Exchange:
    """One HTTP exchange as the SDK saw it."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Collects every response the SDK receives."""

    exchanges: list[Exchange] = field(default_factory=list)

    def hook(self, response: httpx2.Response) -> None:
        """httpx2 response hook."""
        response.read()
        request = response.request
        self.exchanges.append(
            Exchange(
                request.method,
                request.url.path,
                response.status_code,
                dict(response.headers),
                response.content,
            )
        )


class Contract:
    """Finds the spec operation of a response and validates its body."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.routes = [
            (re.compile("/v1" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in spec["paths"]
        ]

    def webhook_errors(self, body: dict[str, Any]) -> list[str]:
        """Violations of the spec's schema for this webhook event type."""
        name = str(body.get("type", "")).replace(".", "_")
        if name not in self.spec["webhooks"]:
            return [f"webhook type {body.get('type')!r} is not in the spec"]
        schema = self.spec["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]
        return self.errors(schema["schema"], body)

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The spec operation for a request, if the extract describes it."""
        for pattern, template in self.routes:
            if pattern.match(path):
                operation: dict[str, Any] | None = self.spec["paths"][template].get(method.lower())
                return operation
        return None

    def errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        """Schema violations, resolving `#/components/...` inside the spec."""
        validator = OAS31Validator(
            _rebase(schema), registry=self.registry, format_checker=oas31_format_checker
        )
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def _rebase(schema: dict[str, Any]) -> dict[str, Any]:
    """Point local `$ref`s of a response schema at the registered spec."""
    text = json.dumps(schema).replace('"#/components/', f'"{SPEC_URI}#/components/')
    rebased: dict[str, Any] = json.loads(text)
    return rebased


class SeenDeviations:
    """Real OpenAI behaviour outside the spec (OPENAI.md), asserted exactly, then normalised."""

    @staticmethod
    def job(job: dict[str, Any]) -> dict[str, Any]:
        """Normalise one fine_tuning.job."""
        job = dict(job)
        if job["status"] != "failed":
            # The live API answers an object of nulls here; the emulator, by default, null.
            assert job["error"] is None
        if job["status"] == "paused":
            # Seen: pause answers `paused`, which no enum lists.
            job["status"] = "running"
        if job["method"]["type"] != "supervised":
            # Seen: DPO jobs return `hyperparameters: null`.
            assert job["hyperparameters"] is None
            job["hyperparameters"] = {}
        return job

    @staticmethod
    def file(file: dict[str, Any]) -> dict[str, Any]:
        """Normalise one file object."""
        if file["purpose"] == "evals":
            # OPENAI.md: purposes on create include `evals`; the response enum lacks it.
            return {**file, "purpose": "user_data"}
        return file

    @classmethod
    def apply(cls, operation_id: str, body: Any) -> Any:
        """Normalise a whole response body."""
        kind = SDK_TYPES.get(operation_id)
        one = {FineTuningJob: cls.job, FileObject: cls.file}.get(kind) if kind else None
        if one is None:
            return body
        if operation_id in LISTS:
            return {**body, "data": [one(item) for item in body["data"]]}
        return one(body)


def check(contract: Contract, exchange: Exchange) -> tuple[str, list[str]]:
    """(operation id, problems) for one exchange."""
    where = f"{exchange.method} {exchange.path} -> {exchange.status}"
    problems = _check_headers(exchange, where)
    path = openai_path(exchange.path) if is_azure(exchange.path) else exchange.path
    if path == "/v1/chat/completions":
        return "chat", problems + _check_chat(exchange)
    operation = contract.operation(exchange.method, path)
    if operation is None:
        return "unknown", [f"{where}: not in the spec"]
    if exchange.status >= 400:
        body = json.loads(exchange.body)
        return "error", problems + [f"{where}: {p}" for p in contract.errors(ERROR_SCHEMA, body)]
    content = operation["responses"]["200"]["content"]["application/json"]["schema"]
    if content == {"type": "string"}:
        return operation["operationId"], problems + ([] if exchange.body else [f"{where}: empty"])
    body = SeenDeviations.apply(operation["operationId"], json.loads(exchange.body))
    problems += [f"{where}: {p}" for p in contract.errors(content, body)]
    return operation["operationId"], problems + _check_sdk(operation["operationId"], body, where)


def _check_headers(exchange: Exchange, where: str) -> list[str]:
    """`x-request-id` and rate-limit headers everywhere; `retry-after` on every 429."""
    headers, problems = exchange.headers, []
    if not headers.get("x-request-id", "").startswith("req_"):
        problems.append(f"{where}: no x-request-id")
    for kind in ("requests", "tokens"):
        for part in ("limit", "remaining", "reset"):
            if f"x-ratelimit-{part}-{kind}" not in headers:
                problems.append(f"{where}: no x-ratelimit-{part}-{kind}")
    if exchange.status == 429 and not headers.get("retry-after", "").isdigit():
        problems.append(f"{where}: 429 without retry-after")
    return problems


def _check_sdk(operation_id: str, body: Any, where: str) -> list[str]:
    """Parse with the SDK's own types (strict pydantic validation)."""
    model = SDK_TYPES[operation_id]
    items = body["data"] if operation_id in LISTS else [body]
    problems = []
    for item in items:
        try:
            model.model_validate(item)
        except ValueError as error:
            problems.append(f"{where}: SDK {model.__name__}: {error}")
    return problems


def _check_chat(exchange: Exchange) -> list[str]:
    """Chat is outside the spec extract: the SDK's ChatCompletion (or the error envelope)."""
    body = json.loads(exchange.body)
    if exchange.status >= 400:
        return [] if set(body["error"]) == {"message", "type", "param", "code"} else ["chat error"]
    try:
        ChatCompletion.model_validate(body)
    except ValueError as error:
        return [f"chat: {error}"]
    return []


def jsonl(lines: list[Any]) -> bytes:
    """JSON lines."""
    return "\n".join(json.dumps(line) for line in lines).encode()


def evals_to_chat(raw: bytes) -> bytes:
    """The product guide's conversion of an evals file: messages = input + [assistant: ideal]."""
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return jsonl(
        [{"messages": [*x["input"], {"role": "assistant", "content": x["ideal"]}]} for x in lines]
    )


@pytest.fixture(scope="module")
def contract() -> Contract:
    """The spec, or a skip."""
    return Contract(_spec_or_skip())


@dataclass
class Hooks:
    """A webhook receiver: every (body, headers) it was sent."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """A bare ASGI app answering 200 to every POST."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.received.append((body, headers))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Session:
    """The clients of one contract run."""

    client: openai.OpenAI
    azure: openai.AzureOpenAI
    control: EmulatorControl
    recorder: Recorder
    hooks: Hooks
    hook_url: str


@pytest.fixture(scope="module")
def session(contract: Contract) -> Iterator[Session]:
    """An emulator, recording OpenAI and Azure SDK clients, admin controls, a webhook receiver."""
    root, stop = serve_in_thread(create_app(speed=SPEED))
    hooks = Hooks()
    hook_root, stop_hooks = serve_in_thread(hooks)
    recorder = Recorder()
    http = httpx2.Client(event_hooks={"response": [recorder.hook]}, timeout=30)
    client = openai.OpenAI(api_key="test", base_url=f"{root}/v1", max_retries=0, http_client=http)
    azure = openai.AzureOpenAI(
        azure_endpoint=root,
        api_version=AZURE_VERSION,
        api_key="azure-test",
        max_retries=0,
        http_client=http,
    )
    control = EmulatorControl(root)
    yield Session(client, azure, control, recorder, hooks, f"{hook_root}/hook")
    control.reset()
    control.close()
    http.close()
    stop()
    stop_hooks()


def read(name: str) -> bytes:
    """A shared data file."""
    return (DATA / name).read_bytes()


def upload(client: openai.OpenAI, name: str, content: bytes, purpose: str = "fine-tune") -> str:
    """Upload bytes; return the file id."""
    return client.files.create(file=(name, content), purpose=purpose).id  # type: ignore[arg-type]


def expect_error(call: Any, kind: type[openai.APIStatusError]) -> None:
    """Run a call that must fail with `kind`."""
    with pytest.raises(kind):
        call()


def run_session(session: Session) -> None:
    """A realistic session over the shared real-world files, then Azure and webhooks."""
    client, control = session.client, session.control
    control.webhooks(session.hook_url, WEBHOOK_SECRET)
    gsm8k = upload(client, "gsm8k.jsonl", read("gsm8k_chat_train.jsonl"))
    tools = upload(client, "zava.jsonl", read("zava_datagen_tooluse_sft_valid.jsonl"))
    upload(client, "ar_lsat.jsonl", read("ar_lsat.jsonl"), purpose="evals")
    lsat = upload(client, "ar_lsat_chat.jsonl", evals_to_chat(read("ar_lsat.jsonl")))
    client.files.list()
    client.files.retrieve(gsm8k)
    client.files.content(tools)
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=gsm8k,
        validation_file=tools,
        suffix="gsm8k",
        seed=42,
        metadata={"ftq_job_id": "ftj_contract"},
        integrations=[{"type": "wandb", "wandb": {"project": "ftq", "tags": ["contract"]}}],
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    client.fine_tuning.jobs.list(metadata={"ftq_job_id": "ftj_contract"})
    client.fine_tuning.jobs.checkpoints.list(job.id)
    control.advance(job.id, 120)
    client.fine_tuning.jobs.pause(job.id)
    client.fine_tuning.jobs.resume(job.id)
    control.advance(job.id)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", done.error
    list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=2))
    client.files.content(done.result_files[0])
    run_other_jobs(client, control, lsat)
    run_errors(client, control, gsm8k)
    run_listings(client, gsm8k)
    run_azure(session.azure, control, lsat)
    client.files.delete(tools)


def run_listings(client: openai.OpenAI, training: str) -> None:
    """Every list with its paging and filter parameters."""
    files = client.files.list(purpose="fine-tune", order="asc", limit=2)
    client.files.list(purpose="fine-tune", order="asc", after=files.data[-1].id)
    jobs = client.fine_tuning.jobs.list(limit=2)
    client.fine_tuning.jobs.list(limit=2, after=jobs.data[-1].id)
    done = next(job for job in client.fine_tuning.jobs.list() if job.status == "succeeded")
    events = client.fine_tuning.jobs.list_events(done.id, limit=5)
    client.fine_tuning.jobs.list_events(done.id, limit=5, after=events.data[-1].id)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(done.id, limit=1)
    client.fine_tuning.jobs.checkpoints.list(done.id, after=checkpoints.data[-1].id)
    client.fine_tuning.jobs.list(metadata={"ftq_job_id": "nobody"})
    assert training


def run_azure(azure: openai.AzureOpenAI, control: EmulatorControl, training: str) -> None:
    """The same API through the SDK's Azure client (`/openai/...?api-version=`)."""
    file_id = azure.files.create(
        file=("az.jsonl", read("gsm8k_chat_train.jsonl")), purpose="fine-tune"
    ).id
    azure.files.retrieve(file_id)
    azure.files.list()
    job = azure.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, metadata={"ftq_job_id": "ftj_azure"}
    )
    azure.fine_tuning.jobs.list(metadata={"ftq_job_id": "ftj_azure"})
    control.advance(job.id, to_status="running")
    azure.fine_tuning.jobs.pause(job.id)
    azure.fine_tuning.jobs.resume(job.id)
    model = control.advance(job.id)["fine_tuned_model"]
    azure.fine_tuning.jobs.retrieve(job.id)
    azure.fine_tuning.jobs.list_events(job.id)
    azure.fine_tuning.jobs.checkpoints.list(job.id)
    azure.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    expect_error(lambda: azure.fine_tuning.jobs.retrieve("ftjob-nope"), openai.NotFoundError)
    expect_error(lambda: azure.files.content("file-nope"), openai.NotFoundError)
    azure.files.delete(file_id)


def run_other_jobs(client: openai.OpenAI, control: EmulatorControl, lsat: str) -> None:
    """DPO, failures, cancel, and chat against a model tuned on the converted AR-LSAT file."""
    orca = upload(client, "orca.jsonl", read("orca_dpo_pairs_validation.jsonl"))
    dpo = client.fine_tuning.jobs.create(
        model="gpt-4.1-mini",
        training_file=orca,
        method={"type": "dpo", "dpo": {}},
        integrations=[{"type": "wandb", "wandb": {"project": "ftq-dpo"}}],
    )
    control.advance(dpo.id)
    client.fine_tuning.jobs.retrieve(dpo.id)
    for name in ("simple_three_examples.jsonl", "python_repr_not_json.jsonl"):
        failing = client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=upload(client, name, read(name))
        )
        control.advance(failing.id)
        assert client.fine_tuning.jobs.retrieve(failing.id).status == "failed"
        client.fine_tuning.jobs.list_events(failing.id)
    tuned = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=lsat)
    client.fine_tuning.jobs.cancel(
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=lsat).id
    )
    model = control.advance(tuned.id)["fine_tuned_model"]
    first = json.loads(read("ar_lsat.jsonl").splitlines()[0])
    answer = client.chat.completions.create(model=model, messages=first["input"])
    assert answer.choices[0].message.content == first["ideal"]
    client.chat.completions.create(model="gpt-4o-mini", messages=first["input"])
    client.fine_tuning.jobs.list(limit=3)


def run_errors(client: openai.OpenAI, control: EmulatorControl, training: str) -> None:
    """The error shapes a client meets."""
    jobs = client.fine_tuning.jobs
    expect_error(lambda: client.files.retrieve("file-missing"), openai.NotFoundError)
    expect_error(lambda: jobs.retrieve("ftjob-missing"), openai.NotFoundError)
    expect_error(
        lambda: jobs.create(model="gpt-4o-mini", training_file=training, extra_body={"x": 1}),
        openai.BadRequestError,
    )
    expect_error(
        lambda: client.chat.completions.create(model="nope", messages=[]), openai.BadRequestError
    )
    fresh = jobs.create(model="gpt-4o-mini", training_file=training)
    expect_error(lambda: jobs.pause(fresh.id), openai.BadRequestError)
    expect_error(lambda: jobs.resume(fresh.id), openai.BadRequestError)
    control.advance(fresh.id)
    expect_error(lambda: jobs.cancel(fresh.id), openai.BadRequestError)
    control.faults(next_429=1, retry_after_ms=10)
    expect_error(lambda: jobs.list(), openai.RateLimitError)
    control.faults(next_5xx=1)
    expect_error(lambda: client.files.list(), openai.InternalServerError)
    control.faults(max_active_jobs=0, retry_after_ms=10)
    expect_error(
        lambda: jobs.create(model="gpt-4o-mini", training_file=training), openai.RateLimitError
    )
    control.faults(create_403=True)
    expect_error(
        lambda: jobs.create(model="gpt-4o-mini", training_file=training),
        openai.PermissionDeniedError,
    )
    control.faults()


def delivered_webhooks(session: Session) -> list[tuple[bytes, dict[str, str]]]:
    """Wait until every queued webhook has been delivered; return what the receiver got."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        deliveries = session.control.webhook_deliveries()
        if deliveries and all(d["status"] == "delivered" for d in deliveries):
            break
        time.sleep(0.05)
    with session.hooks.lock:
        return list(session.hooks.received)


def check_webhooks(contract: Contract, session: Session) -> tuple[set[str], list[str]]:
    """(event types seen, problems) of the webhooks sent during the session."""
    types, problems = set(), []
    for body, headers in delivered_webhooks(session):
        event = json.loads(body)
        types.add(event["type"])
        problems += [f"webhook {event['type']}: {p}" for p in contract.webhook_errors(event)]
        unwrapped = session.client.webhooks.unwrap(body, headers, secret=WEBHOOK_SECRET)
        if not isinstance(unwrapped, FINE_TUNING_WEBHOOKS) or (
            unwrapped.type,
            unwrapped.data.id,
        ) != (event["type"], event["data"]["id"]):
            problems.append(f"webhook {event['type']}: SDK parsed {unwrapped!r}")
    return types, problems


def test_every_response_matches_openai_contract(contract: Contract, session: Session) -> None:
    run_session(session)
    results = [check(contract, exchange) for exchange in session.recorder.exchanges]
    problems = [problem for _, found in results for problem in found]
    webhook_types, webhook_problems = check_webhooks(contract, session)
    problems += webhook_problems
    assert not problems, "\n".join(problems[:30])
    covered = {operation for operation, _ in results}
    assert set(SDK_TYPES) | {"downloadFile", "chat", "error"} <= covered
    assert webhook_types == {
        "fine_tuning.job.succeeded",
        "fine_tuning.job.failed",
        "fine_tuning.job.cancelled",
    }
    azure_paths = {e.path for e in session.recorder.exchanges if is_azure(e.path)}
    assert {"/openai/files", "/openai/fine_tuning/jobs"} <= azure_paths
    statuses = {e.status for e in session.recorder.exchanges}
    assert {200, 400, 403, 404, 429} <= statuses and any(s >= 500 for s in statuses)
    assert len(session.recorder.exchanges) > 60
