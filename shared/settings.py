"""One settings class for every ftq process, read from `FTQ_*` environment variables."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

PLACEHOLDER_SECRETS = {
    "",
    "changethis",
    "change-me",
    "replace",
    "REPLACE",
    "dev-admin-token",
    "dev-secret-key",
}

LIST_FORM = "a,b or a JSON array"
DICT_FORM = "key=value,key2=value2 or a JSON object"
GOT_LIMIT = 80  # longer values are cut in error lines


@lru_cache(maxsize=1)
def _torch_installed() -> bool:
    """Whether torch can be imported here (asked once: a path search costs every job create)."""
    return importlib.util.find_spec("torch") is not None


class ConfigError(ValueError):
    """A setting's value is unusable; the message is one line naming the variable(s)."""


def parse_list(value: str) -> list[Any]:
    """`a, b` (trimmed, empty items dropped) or a JSON array."""
    text = value.strip()
    if text.startswith("["):
        parsed = json.loads(text)  # a JSONDecodeError is a ValueError: pydantic reports it
        if not isinstance(parsed, list):
            raise ValueError("not a JSON array")
        return parsed
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_dict(value: str) -> dict[str, Any]:
    """`key=value,key2=value2` (keys may hold `:`) or a JSON object."""
    text = value.strip()
    if text.startswith("{"):
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
        return parsed
    pairs: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item.strip()!r} is not key=value")
        pairs[key.strip()] = val.strip()
    return pairs


class Settings(BaseSettings):
    """Configuration; the defaults are the embedded mode (SQLite, in-process worker, emulator)."""

    model_config = SettingsConfigDict(env_prefix="FTQ_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".ftq")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None

    database_url: str | None = None
    # Connections kept per process: at least the API's thread pool's busy share, so a burst does
    # not open and close overflow connections (a Postgres backend start costs more than a query).
    database_pool_size: int = Field(default=30, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    # Async connections per API process for the reads its event loop answers (GET /v1/jobs/{id}).
    database_loop_pool_size: int = Field(default=4, ge=1, le=64)
    # Threads per API process for its synchronous routes (anyio's default is 40).
    api_threads: int = Field(default=40, ge=1, le=400)
    broker_url: str = "memory://"
    embedded_worker: bool | None = None
    worker_concurrency: int = 4

    admin_token: SecretStr = SecretStr("dev-admin-token")
    secret_key: SecretStr = SecretStr("dev-secret-key")

    blob_dir: Path | None = None
    max_upload_bytes: int = 512 * 1024 * 1024

    provider: str = "emulator"  # emulator, openai, azure-openai (see ftq.shared.providers.registry)
    # None: the default provider's newest open model (ftq.shared.catalog.default_model).
    default_model: str | None = None
    emulator_url: str | None = None
    emulator_speed: float = 60.0
    openai_api_key: SecretStr | None = Field(default=None)
    openai_base_url: str | None = None
    openai_organization: str | None = None
    azure_endpoint: str | None = None
    azure_api_version: str = "2025-04-01-preview"
    azure_api_key: SecretStr | None = None
    azure_ad_token: SecretStr | None = None  # a Microsoft Entra ID bearer token instead of a key
    # Microsoft Entra ID through azure-identity's DefaultAzureCredential (when installed).
    azure_use_entra_id: bool = False
    # Azure serves chat completions per deployment: model name -> deployment name (default same).
    azure_deployments: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    openai_webhook_secret: SecretStr | None = None  # whsec_… of OpenAI's own webhooks
    # The `together` provider: a key (FTQ_TOGETHER_API_KEY or TOGETHER_API_KEY) and, for the
    # emulator (…/emulator/together) or a proxy, a base URL, which alone is enough there.
    together_api_key: SecretStr | None = None
    together_base_url: str | None = None

    # Active fine-tuning jobs ftq lets run per (provider, model): JSON object whose keys are
    # "provider:model", "provider" or "*"; the most specific wins, else default_provider_capacity.
    provider_capacity: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    default_provider_capacity: int = 3

    # A job left in `uploading` this long lost its submit task (a killed worker holds it until
    # Redis' visibility timeout): resubmit. Longer than a submit's retries (about 8 min plus
    # retry-after waits) and its time limit, so a live submit is never doubled.
    submit_stuck_seconds: float = 45 * 60.0
    poll_interval_seconds: float = 15.0
    poll_max_interval_seconds: float = 600.0
    sweep_interval_seconds: float = 2.0
    webhook_timeout_seconds: float = 10.0
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_concurrency_per_endpoint: int = 10
    webhook_lease_seconds: float = 60.0
    # Multiplies the webhook retry schedule's delays; below 1 only for drills and tests.
    webhook_retry_scale: float = Field(1.0, gt=0.0, le=1.0)

    # The `local` provider (issue 8; README "Local LoRA training"): short model names -> a local
    # directory, a .gguf file or a Hugging Face id already in the cache.
    local_models: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Whether this deployment runs `local` jobs and `local:` evals (on its `gpu` workers). The API
    # image lacks torch, so production sets it; unset, it follows whether torch is installed here.
    local_enabled: bool | None = None
    local_work_dir: Path | None = None  # checkpoints and converted models; shared by GPU workers
    local_base_learning_rate: float = 2e-4  # times learning_rate_multiplier ("auto" = 1)
    local_lora_rank: int = 16
    local_lora_alpha: int = 32
    local_lora_dropout: float = 0.05
    local_lora_target_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["all-linear"]
    )
    local_max_length: int = 1024
    local_quantize_4bit: bool = True  # QLoRA where CUDA and bitsandbytes are present
    local_report_seconds: float = 0.5  # how often a run writes its events and reads cancel
    local_lease_seconds: float = 300.0  # a run silent this long is restarted from its checkpoint
    local_time_limit_seconds: int = 24 * 60 * 60
    local_torch_threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default
    # Whether the training cluster has CUDA GPUs with bitsandbytes (QLoRA's `quantization: 4bit`).
    # The API pod checks job requests and usually has no GPU itself: unset, it looks here.
    local_cuda: bool | None = None
    # Serving `local:` models: "auto" (vLLM where CUDA and vllm are present, else transformers),
    # "vllm" or "transformers"; vLLM keeps one base and up to this many LoRA adapters loaded.
    local_serving_backend: Literal["auto", "vllm", "transformers"] = "auto"
    local_serving_max_adapters: int = Field(8, ge=1)
    local_serving_max_lora_rank: int = Field(64, ge=1)
    local_serving_gpu_memory: float = Field(0.85, gt=0.0, le=1.0)  # vLLM's share of the GPU
    # The serving worker (`python -m ftq.services.worker.serving`) that answers `local:` chat
    # completions where the GPUs are; unset, the process handling the request generates itself.
    local_serving_url: str | None = None
    local_serving_token: SecretStr | None = None  # the bearer both sides share
    local_serving_port: int = Field(8600, ge=1, le=65535)
    local_serving_timeout_seconds: float = Field(120.0, gt=0.0)
    # Where local runs train (README "Training on Ray"): in the Celery task, or as Ray Jobs under
    # Ray Train. FTQ_RAY_ADDRESS is a Ray dashboard URL; unset, the worker starts a Ray head.
    local_backend: Literal["inprocess", "ray"] = "inprocess"
    ray_address: str | None = None
    ray_dashboard_port: int = Field(8265, ge=1, le=65535)  # of the head the worker starts
    ray_cpus_per_worker: float = Field(1.0, gt=0.0)
    ray_max_failures: int = Field(2, ge=0)  # Ray Train worker-group restarts per attempt
    ray_max_attempts: int = Field(3, ge=1)  # Ray Jobs one run may use (a lost job is resubmitted)
    ray_poll_seconds: float = Field(1.0, gt=0.0)

    # Evals (README "Evaluations"): chat requests per second to one provider from one worker
    # process (0 = unlimited; eval_provider_rps overrides per provider name), retries of 429 / 5xx
    # per item, the longest wait between them, and how long one task runs before it hands on.
    eval_requests_per_second: float = Field(10.0, ge=0.0)
    eval_provider_rps: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    eval_max_retries: int = Field(5, ge=0)
    eval_max_backoff_seconds: float = Field(60.0, gt=0.0)
    eval_max_concurrency: int = Field(32, ge=1)
    eval_max_items: int = Field(5000, ge=1)
    eval_max_tokens: int | None = 512
    eval_lease_seconds: float = Field(120.0, gt=0.0)
    eval_task_budget_seconds: float = Field(20 * 60.0, gt=0.0)
    # A job's retention check warns when the tuned model scores more than this below the base
    # on the general-skills suite (docs/evals.md#retention-checks).
    retention_warn_drop: float = Field(0.05, ge=0.0, le=1.0)

    # Dataset quality (the report's `quality` section; warnings only, docs/validation.md).
    quality_near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0)
    quality_num_perm: int = Field(64, ge=8, le=512)
    quality_ngram: int = Field(3, ge=1, le=8)
    quality_max_words: int = Field(48, ge=8)
    quality_length_mad_k: float = Field(6.0, gt=0.0)
    quality_balance_max_labels: int = Field(20, ge=2)
    quality_balance_label_max_chars: int = Field(40, ge=1)
    quality_balance_majority_share: float = Field(0.8, gt=0.0, le=1.0)
    quality_listed_lines: int = Field(20, ge=1, le=100)

    log_level: str = "INFO"
    # Starts of one task message that never finished (its worker died) before it is refused.
    task_max_deliveries: int = Field(5, ge=1)
    # How long one API process reuses a (provider, model) queue's fair order for the
    # `queue_position` of job reads (0: compute it on every read). A job new to the queue is
    # never answered from an older order.
    queue_position_cache_seconds: float = Field(1.0, ge=0.0)
    # GET /metrics needs `Authorization: Bearer <token>` when set; open otherwise.
    metrics_token: SecretStr | None = None
    # Each Celery worker serves its own /metrics on this port when set (README "Operations").
    worker_metrics_port: int | None = None

    @field_validator("webhook_allow_hosts", "local_lora_target_modules", mode="before")
    @classmethod
    def _list_from_text(cls, value: Any) -> Any:
        return parse_list(value) if isinstance(value, str) else value

    @field_validator("ray_address")
    @classmethod
    def _ray_dashboard_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("FTQ_RAY_ADDRESS is the Ray dashboard's URL (http://host:8265)")
        return value.rstrip("/") if value else None

    @field_validator(
        "azure_deployments", "provider_capacity", "local_models", "eval_provider_rps", mode="before"
    )
    @classmethod
    def _dict_from_text(cls, value: Any) -> Any:
        return parse_dict(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        for name in ("admin_token", "secret_key"):
            value = getattr(self, name).get_secret_value()
            if value in PLACEHOLDER_SECRETS or len(value) < 16:
                raise ValueError(
                    f"FTQ_{name.upper()} must be set to a real secret (16+ characters) "
                    "in production"
                )
        if not (self.database_url or "").startswith("postgresql"):
            raise ValueError("FTQ_DATABASE_URL must point at PostgreSQL in production")
        if self.broker_url.startswith("memory"):
            raise ValueError("FTQ_BROKER_URL must point at Redis in production")
        token = self.local_serving_token.get_secret_value() if self.local_serving_token else ""
        if self.local_serving_url and (token in PLACEHOLDER_SECRETS or len(token) < 16):
            raise ValueError(
                "FTQ_LOCAL_SERVING_TOKEN must be set (16+ characters) when FTQ_LOCAL_SERVING_URL "
                "is, in production"
            )
        return self

    @property
    def local_provider_enabled(self) -> bool:
        """FTQ_LOCAL_ENABLED, else whether torch is installed (found, never imported)."""
        if self.local_enabled is not None:
            return self.local_enabled
        return _torch_installed()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ftq.sqlite3').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        """Where dataset files and provider result files are kept."""
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        """Whether `ftq up` runs the Celery worker and beat inside its own process."""
        if self.embedded_worker is not None:
            return self.embedded_worker
        return self.broker_url.startswith("memory")

    @property
    def base_url(self) -> str:
        """The URL this API is reachable at (used for the embedded emulator)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def resolved_emulator_url(self) -> str:
        """The emulator's OpenAI-style base URL (ends in /v1)."""
        return self.emulator_url or f"{self.base_url}/emulator/v1"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a bad value raises ConfigError with one line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, given=set(overrides))) from None
    except SettingsError as exc:  # a source that failed before validation
        raise ConfigError(" ".join(str(exc).split())) from None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turn a ConfigError into one stderr line and exit status 2 (no traceback)."""
    try:
        yield
    except ConfigError as exc:
        print(f"ftq: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def describe_errors(exc: ValidationError, given: set[str] | None = None) -> str:
    """One line for every bad variable, joined with `; ` (`given`: fields passed as arguments)."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = loc[0] if loc and isinstance(loc[0], str) else None
        info = Settings.model_fields.get(field) if field else None
        if field is None or info is None:  # the model validator: its message names the variable
            line = error.get("msg", "invalid settings").removeprefix("Value error, ")
        elif field in seen:
            continue
        else:
            seen.add(field)
            got = _got(field, info, error, from_env=field not in (given or set()))
            line = f"{env_name(field)}: got {got}; wants {wanted(info)}"
        if line not in lines:
            lines.append(" ".join(line.split()))
    return "; ".join(lines)


def _got(field: str, info: FieldInfo, error: Any, *, from_env: bool = True) -> str:
    if _is_secret(info.annotation):
        return "(hidden)"
    name = env_name(field)
    raw = next((v for k, v in os.environ.items() if k.upper() == name), None) if from_env else None
    value = raw if raw is not None else error.get("input")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > GOT_LIMIT:
        text = text[: GOT_LIMIT - 1] + "…"
    return repr(text)


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                parts.append(f"{sign} {bound:g}" if isinstance(bound, float) else f"{sign} {bound}")
    return (" " + " and ".join(parts)) if parts else ""


def _noun(annotation: Any, plural: bool = False) -> str:
    annotation = _strip_optional(annotation)
    if annotation is bool:
        return "booleans" if plural else "a boolean (true or false)"
    if annotation is int:
        return "integers" if plural else "an integer"
    if annotation is float:
        return "numbers" if plural else "a number"
    if annotation is Path:
        return "paths" if plural else "a path"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(annotation))
    return "strings" if plural else "a string"


def wanted(info: FieldInfo) -> str:
    """The form a field wants, from its annotation and constraints."""
    annotation = _strip_optional(info.annotation)
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation) or (str,)
        kind = "" if _strip_optional(item) is str else f" of {_noun(item, plural=True)}"
        return f"a list{kind}: {LIST_FORM}"
    if origin is dict:
        args = get_args(annotation)
        value = args[1] if len(args) == 2 else str
        kind = "" if _strip_optional(value) is str else f" of {_noun(value, plural=True)}"
        return f"a mapping{kind}: {DICT_FORM}"
    return _noun(annotation) + _bounds(info.metadata)
