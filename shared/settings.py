"""One settings class for every ftq process, read from `FTQ_*` environment variables."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "",
    "changethis",
    "change-me",
    "replace",
    "REPLACE",
    "dev-admin-token",
    "dev-secret-key",
}


class Settings(BaseSettings):
    """Configuration; the defaults are the embedded mode (SQLite, in-process worker, emulator)."""

    model_config = SettingsConfigDict(env_prefix="FTQ_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".ftq")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None

    database_url: str | None = None
    broker_url: str = "memory://"
    embedded_worker: bool | None = None
    worker_concurrency: int = 4

    admin_token: SecretStr = SecretStr("dev-admin-token")
    secret_key: SecretStr = SecretStr("dev-secret-key")

    blob_dir: Path | None = None
    max_upload_bytes: int = 512 * 1024 * 1024

    provider: str = "emulator"  # emulator, openai, azure-openai (see shared.providers.registry)
    default_model: str = "gpt-4o-mini-2024-07-18"
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
    azure_deployments: dict[str, str] = Field(default_factory=dict)
    openai_webhook_secret: SecretStr | None = None  # whsec_… of OpenAI's own webhooks

    # Active fine-tuning jobs ftq lets run per (provider, model): JSON object whose keys are
    # "provider:model", "provider" or "*"; the most specific wins, else default_provider_capacity.
    provider_capacity: dict[str, int] = Field(default_factory=dict)
    default_provider_capacity: int = 3

    # A job left in `uploading` this long lost its submit task (a killed worker holds it until
    # Redis' visibility timeout): resubmit. Longer than a submit's retries (about 8 min plus
    # retry-after waits) and its time limit, so a live submit is never doubled.
    submit_stuck_seconds: float = 45 * 60.0
    poll_interval_seconds: float = 15.0
    poll_max_interval_seconds: float = 600.0
    sweep_interval_seconds: float = 2.0
    webhook_timeout_seconds: float = 10.0
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    webhook_concurrency_per_endpoint: int = 10
    webhook_lease_seconds: float = 60.0
    # Multiplies the webhook retry schedule's delays; below 1 only for drills and tests.
    webhook_retry_scale: float = Field(1.0, gt=0.0, le=1.0)

    # The `local` provider (issue 8; README "Local LoRA training"): short model names -> a local
    # directory, a .gguf file or a Hugging Face id already in the cache.
    local_models: dict[str, str] = Field(default_factory=dict)
    # Whether this deployment runs `local` jobs and `local:` evals (on its `gpu` workers). The API
    # image lacks torch, so production sets it; unset, it follows whether torch is installed here.
    local_enabled: bool | None = None
    local_work_dir: Path | None = None  # checkpoints and converted models; shared by GPU workers
    local_base_learning_rate: float = 2e-4  # times learning_rate_multiplier ("auto" = 1)
    local_lora_rank: int = 16
    local_lora_alpha: int = 32
    local_lora_dropout: float = 0.05
    local_lora_target_modules: list[str] = Field(default_factory=lambda: ["all-linear"])
    local_max_length: int = 1024
    local_quantize_4bit: bool = True  # QLoRA where CUDA and bitsandbytes are present
    local_report_seconds: float = 0.5  # how often a run writes its events and reads cancel
    local_lease_seconds: float = 300.0  # a run silent this long is restarted from its checkpoint
    local_time_limit_seconds: int = 24 * 60 * 60
    local_torch_threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default

    # Evals (README "Evaluations"): chat requests per second to one provider from one worker
    # process (0 = unlimited; eval_provider_rps overrides per provider name), retries of 429 / 5xx
    # per item, the longest wait between them, and how long one task runs before it hands on.
    eval_requests_per_second: float = Field(10.0, ge=0.0)
    eval_provider_rps: dict[str, float] = Field(default_factory=dict)
    eval_max_retries: int = Field(5, ge=0)
    eval_max_backoff_seconds: float = Field(60.0, gt=0.0)
    eval_max_concurrency: int = Field(32, ge=1)
    eval_max_items: int = Field(5000, ge=1)
    eval_max_tokens: int | None = 512
    eval_lease_seconds: float = Field(120.0, gt=0.0)
    eval_task_budget_seconds: float = Field(20 * 60.0, gt=0.0)

    log_level: str = "INFO"
    # Starts of one task message that never finished (its worker died) before it is refused.
    task_max_deliveries: int = Field(5, ge=1)
    # GET /metrics needs `Authorization: Bearer <token>` when set; open otherwise.
    metrics_token: SecretStr | None = None
    # Each Celery worker serves its own /metrics on this port when set (README "Operations").
    worker_metrics_port: int | None = None

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
        return self

    @property
    def local_provider_enabled(self) -> bool:
        """FTQ_LOCAL_ENABLED, else whether torch is installed (found, never imported)."""
        if self.local_enabled is not None:
            return self.local_enabled
        return importlib.util.find_spec("torch") is not None

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


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
