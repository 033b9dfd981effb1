"""Every answer of the emulator's Together AI API checked against Together's own OpenAPI file.

A session with the real `together` SDK (and a few raw calls for errors the SDK pre-empts) goes
through every route the emulator serves under `/together/v1`; each response is matched to its
operation in `together-openapi.yaml` (see README.md for its source) and its JSON body validated
against that operation's schema, errors against the spec's `ErrorData`. Two routes the SDK's
upload manager calls are not in the file: the announcing `POST /files` (a 302 whose headers are
checked) and `POST /files/{id}/preprocess` (validated as a `FileResponse`, the type the SDK
parses it into).

The file is OpenAPI 3.1 but writes 3.0's `nullable: true`; it is read as "null allowed". Where
the file contradicts Together's own examples and SDK, the emulator follows those, and
`Deviations` asserts the exact difference before normalising it, so any other one fails.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import together
import yaml
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

SPEC_FILE = Path(__file__).with_name("together-openapi.yaml")
SPEC_URI = "urn:together-openapi"
API = "/together/v1"
BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Served by the emulator, called by the SDK, absent from the spec file.
OFF_SPEC = {"POST /files", "POST /files/{id}/preprocess"}


def _with_nulls(node: Any) -> Any:
    """The spec with 3.0's `nullable: true` turned into 3.1's null-allowing schemas."""
    if isinstance(node, list):
        return [_with_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _with_nulls(value) for key, value in node.items()}
    if node.pop("nullable", False) is not True:
        return node
    if isinstance(node.get("type"), str):
        return {**node, "type": [node["type"], "null"]}
    return {"anyOf": [{"type": "null"}, node]}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """Together's OpenAPI description, nulls made explicit."""
    loaded: dict[str, Any] = yaml.load(SPEC_FILE.read_text(), Loader=yaml.CSafeLoader)
    converted: dict[str, Any] = _with_nulls(loaded)
    return converted


@dataclass
class Exchange:
    """One HTTP exchange the client saw."""

    method: str
    path: str
    status: int
    headers: httpx.Headers
    body: bytes


@dataclass
class Recorder:
    """Collects every response of an httpx client."""

    exchanges: list[Exchange] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        """httpx response hook."""
        response.read()
        request = response.request
        self.exchanges.append(
            Exchange(
                request.method,
                request.url.path,
                response.status_code,
                response.headers,
                response.content,
            )
        )


class Contract:
    """Finds an exchange's operation in the spec and validates bodies."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.routes = [
            (re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in spec["paths"]
        ]

    def template(self, method: str, path: str) -> str | None:
        """`METHOD /template` of the spec operation for a request (None: not in the spec)."""
        for pattern, template in self.routes:
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                return f"{method} {template}"
        return None

    def operation(self, key: str) -> dict[str, Any]:
        """The operation object of `METHOD /template`."""
        method, template = key.split(" ", 1)
        found: dict[str, Any] = self.spec["paths"][template][method.lower()]
        return found

    def component(self, name: str) -> dict[str, Any]:
        """A `$ref` to one schema of the spec's components."""
        return {"$ref": f"#/components/schemas/{name}"}

    def errors(self, schema: dict[str, Any], body: Any) -> list[str]:
        """Schema violations, resolving `#/components/...` inside the spec."""
        text = json.dumps(schema).replace('"#/components/', f'"{SPEC_URI}#/components/')
        validator = OAS31Validator(
            json.loads(text), registry=self.registry, format_checker=oas31_format_checker
        )
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


class Deviations:
    """Where the emulator follows Together's examples and SDK over the file; asserted exactly."""

    @staticmethod
    def job(contract: Contract, job: dict[str, Any], full: bool) -> dict[str, Any]:
        """Normalise a fine-tune job (full: `FinetuneResponse`, else the truncated one)."""
        job = dict(job)
        if full:
            # The file says `format: uuid`; Together's ids (its examples, the SDK's docs) are
            # `ft-` + a UUID.
            assert re.fullmatch(f"ft-{UUID}", job["id"]), job["id"]
            job["id"] = job["id"].removeprefix("ft-")
        scheduler = job.get("lr_scheduler")
        if scheduler and scheduler["lr_scheduler_type"] == "cosine":
            # Cosine arguments also match `LinearLRSchedulerArgs` (no required field), so the
            # file's `oneOf` can never pass for them: check them against the cosine schema alone.
            args = scheduler["lr_scheduler_args"]
            assert not contract.errors(contract.component("CosineLRSchedulerArgs"), args)
            linear_view = {k: v for k, v in args.items() if k != "num_cycles"}
            job["lr_scheduler"] = {**scheduler, "lr_scheduler_args": linear_view}
        return job

    @staticmethod
    def download(exchange: Exchange) -> None:
        """The file says `application/octet-stream`; the SDK names `x-tar` answers `.tar.gz`."""
        assert exchange.headers["content-type"] == "application/x-tar"
        assert gzip.decompress(exchange.body)[257:262] == b"ustar"


def _session(root: str, tmp_path: Path, recorder: Recorder) -> None:
    """Drive every route the emulator serves under `/together/v1`."""
    http = httpx.Client(event_hooks={"response": [recorder.hook]}, timeout=30)
    client = together.Together(
        api_key="k", base_url=f"{root}/together", http_client=http, max_retries=0
    )
    control = EmulatorControl(root)
    train = _upload(client, tmp_path / "train.jsonl", _chat(12))
    valid = _upload(client, tmp_path / "valid.jsonl", _chat(4))
    client.files.list()
    client.files.retrieve(train)
    client.files.content(train).read()
    job = client.fine_tuning.create(
        training_file=train,
        validation_file=valid,
        model=BASE,
        n_epochs=2,
        n_checkpoints=2,
        n_evals=2,
        suffix="contract",
        train_on_inputs="auto",
        lora=True,
    )
    control.advance(job.id, to_status="running")
    client.fine_tuning.retrieve(job.id)
    control.advance(job.id)
    assert job.output_name is not None
    _job_reads(client, job.id, job.output_name)
    full = client.fine_tuning.create(
        training_file=train,
        model=BASE,
        lora=False,
        lr_scheduler_type="linear",
        train_on_inputs=True,
    )
    client.fine_tuning.cancel(full.id)
    control.advance(full.id)
    client.fine_tuning.delete(full.id)
    _direct_upload(http, root)
    _errors(client, http, control, root, train)
    client.files.delete(valid)


def _job_reads(client: together.Together, job_id: str, model: str) -> None:
    """Every read of a completed job, its model and its artifacts."""
    client.fine_tuning.list()
    client.fine_tuning.retrieve(job_id)
    client.fine_tuning.list_events(job_id)
    client.fine_tuning.list_checkpoints(job_id)
    client.fine_tuning.list_metrics(job_id)
    client.fine_tuning.content(ft_id=job_id).read()
    client.fine_tuning.content(ft_id=job_id, checkpoint_step=2).read()
    client.fine_tuning.model_limits(model_name="Qwen/Qwen2.5-7B-Instruct")
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "q1"}])
    client.get("/v1/fine-tunes/models/supported", cast_to=httpx.Response)


def _direct_upload(http: httpx.Client, root: str) -> None:
    """`POST /files/upload`, the multipart route with the bytes."""
    http.post(
        f"{root}{API}/files/upload",
        data={"purpose": "fine-tune", "file_name": "d.jsonl", "file_type": "jsonl"},
        files={"file": ("d.jsonl", json.dumps({"text": "hi"}).encode() + b"\n")},
        headers={"Authorization": "Bearer k"},
    )


def _errors(
    client: together.Together, http: httpx.Client, control: EmulatorControl, root: str, train: str
) -> None:
    """Errors of several kinds: 404, 400, 401, 403, 429."""
    calls = [
        lambda: client.fine_tuning.retrieve("ft-missing"),
        lambda: client.files.retrieve("file-missing"),
        lambda: client.fine_tuning.model_limits(model_name="nobody/nothing"),
        lambda: client.fine_tuning.create(training_file="file-missing", model=BASE),
        lambda: client.fine_tuning.create(training_file=train, model=BASE, n_evals=3),
    ]
    for call in calls:
        with pytest.raises(together.APIStatusError):
            call()
    http.get(f"{root}{API}/fine-tunes")
    control.faults(create_403=True)
    with pytest.raises(together.PermissionDeniedError):
        client.fine_tuning.create(training_file=train, model=BASE, train_on_inputs="auto")
    control.faults(next_429=1, only=["GET /together/v1/files"])
    with pytest.raises(together.RateLimitError):
        client.files.list()
    control.faults()


def _chat(n: int) -> list[dict[str, Any]]:
    """Conversation examples."""
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(n)
    ]


def _upload(client: together.Together, path: Path, lines: list[dict[str, Any]]) -> str:
    """Upload a JSONL file the SDK's way; its id."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return client.files.upload(file=path, purpose="fine-tune").id


def _check(contract: Contract, exchange: Exchange) -> tuple[str, list[str]]:
    """(`METHOD /template` covered, problems) of one exchange."""
    path = exchange.path.removeprefix(API)
    key = contract.template(exchange.method, path)
    if exchange.status >= 400:
        return "error", contract.errors(contract.component("ErrorData"), json.loads(exchange.body))
    if key is None:
        return _off_spec(contract, exchange, path)
    if key == "GET /finetune/download":
        Deviations.download(exchange)
        return key, []
    content = contract.operation(key)["responses"][str(exchange.status)]["content"]
    if "application/json" not in content:
        assert exchange.headers["content-type"].split(";")[0] in content, key
        return key, []
    body = json.loads(exchange.body)
    if key in ("GET /fine-tunes/{id}", "POST /fine-tunes", "POST /fine-tunes/{id}/cancel"):
        body = Deviations.job(contract, body, full=key == "GET /fine-tunes/{id}")
    if key == "GET /fine-tunes":
        body = {"data": [Deviations.job(contract, job, full=False) for job in body["data"]]}
    return key, contract.errors(content["application/json"]["schema"], body)


def _off_spec(contract: Contract, exchange: Exchange, path: str) -> tuple[str, list[str]]:
    """The upload manager's two routes that the file does not describe."""
    template = re.sub(r"/file-[^/]+/", "/{id}/", path)
    key = f"{exchange.method} {template}"
    if key not in OFF_SPEC:
        return key, [f"{key} -> {exchange.status}: not in Together's description"]
    if key == "POST /files":
        assert exchange.status == 302, exchange.status
        file_id = exchange.headers["x-together-file-id"]
        assert file_id in exchange.headers["location"]
        return key, []
    body = json.loads(exchange.body)
    return key, contract.errors(contract.component("FileResponse"), body)


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """An emulator with time frozen."""
    url, stop = serve_in_thread(create_app(speed=0.0))
    yield url
    stop()


def test_every_together_answer_matches_togethers_description(
    spec: dict[str, Any], root: str, tmp_path: Path
) -> None:
    contract, recorder = Contract(spec), Recorder()
    _session(root, tmp_path, recorder)
    covered, problems = set(), []
    for exchange in recorder.exchanges:
        if not exchange.path.startswith(API):
            continue  # the signed-URL PUT goes to storage, not to the API
        key, found = _check(contract, exchange)
        covered.add(key)
        problems += [f"{exchange.method} {exchange.path} -> {exchange.status}: {p}" for p in found]
    assert not problems, "\n".join(problems[:30])
    served = {
        "GET /files",
        "GET /files/{id}",
        "DELETE /files/{id}",
        "GET /files/{id}/content",
        "POST /files/upload",
        "POST /fine-tunes",
        "GET /fine-tunes",
        "POST /fine-tunes/estimate-price",
        "GET /fine-tunes/{id}",
        "DELETE /fine-tunes/{id}",
        "GET /fine-tunes/{id}/events",
        "GET /fine-tunes/{id}/checkpoints",
        "GET /finetune/download",
        "POST /fine-tunes/{id}/cancel",
        "GET /fine-tunes/{id}/metrics",
        "GET /fine-tunes/models/supported",
        "GET /fine-tunes/models/limits",
        "POST /chat/completions",
    }
    assert served | OFF_SPEC | {"error"} == covered
    statuses = {e.status for e in recorder.exchanges if e.status >= 400}
    assert {400, 401, 403, 404, 429} <= statuses
