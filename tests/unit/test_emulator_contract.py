"""Every emulator response of a realistic session checked against OpenAI's own contract.

Each JSON body is validated against the response schema of OpenAI's OpenAPI description
(`$FTQ_SHARED_DATA/openai-openapi-finetuning.yaml`) and parsed with the SDK's pydantic types.
The emulator copies real OpenAI behaviour where it differs from the spec; those "seen"
differences (OPENAI.md) are asserted exactly and then normalised in `SeenDeviations` before
validation, so any other difference fails.
"""

from __future__ import annotations

import json
import os
import re
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
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.emulator.app import create_app
from services.emulator.testing import EmulatorControl, serve_in_thread

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
SPEED = 3000.0


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
            # Seen: non-failed jobs return `error` as an object of nulls.
            assert job["error"] == {"code": None, "message": None, "param": None}
            job["error"] = None
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
    has_id = exchange.headers.get("x-request-id", "").startswith("req_")
    problems = [] if has_id else [f"{where}: no x-request-id"]
    if exchange.path == "/v1/chat/completions":
        return "chat", problems + _check_chat(exchange)
    operation = contract.operation(exchange.method, exchange.path)
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


@pytest.fixture(scope="module")
def session(contract: Contract) -> Iterator[tuple[openai.OpenAI, EmulatorControl, Recorder]]:
    """An emulator, a recording SDK client and the admin controls."""
    root, stop = serve_in_thread(create_app(speed=SPEED))
    recorder = Recorder()
    http = httpx2.Client(event_hooks={"response": [recorder.hook]}, timeout=30)
    client = openai.OpenAI(api_key="test", base_url=f"{root}/v1", max_retries=0, http_client=http)
    control = EmulatorControl(root)
    yield client, control, recorder
    control.close()
    http.close()
    stop()


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


def run_session(client: openai.OpenAI, control: EmulatorControl) -> None:
    """A realistic session over the shared real-world files."""
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
    client.files.delete(tools)


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
    control.faults(next_429=1, retry_after_ms=10)
    expect_error(lambda: jobs.list(), openai.RateLimitError)
    control.faults(create_403=True)
    expect_error(
        lambda: jobs.create(model="gpt-4o-mini", training_file=training),
        openai.PermissionDeniedError,
    )
    control.faults()


def test_every_response_matches_openai_contract(
    contract: Contract, session: tuple[openai.OpenAI, EmulatorControl, Recorder]
) -> None:
    client, control, recorder = session
    run_session(client, control)
    results = [check(contract, exchange) for exchange in recorder.exchanges]
    problems = [problem for _, found in results for problem in found]
    assert not problems, "\n".join(problems[:30])
    covered = {operation for operation, _ in results}
    assert set(SDK_TYPES) | {"downloadFile", "chat", "error"} <= covered
    assert len(recorder.exchanges) > 40
