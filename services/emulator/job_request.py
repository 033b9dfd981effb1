"""Validation of `POST /v1/fine_tuning/jobs` bodies, with OpenAI's error messages (emulator)."""

from __future__ import annotations

from typing import Any

from ftq.services.emulator.errors import bad_request, invalid_type, missing
from ftq.services.emulator.job import JobSpec

FIELDS = (
    "model",
    "training_file",
    "hyperparameters",
    "suffix",
    "validation_file",
    "integrations",
    "seed",
    "method",
    "metadata",
)
METHODS = ("supervised", "dpo", "reinforcement")
MAX_SEED = 2_147_483_647
COMMON = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}
HYPER_DEFAULTS: dict[str, dict[str, Any]] = {
    "supervised": COMMON,
    "dpo": {"beta": "auto", **COMMON},
    "reinforcement": {
        **COMMON,
        "eval_interval": "auto",
        "eval_samples": "auto",
        "compute_multiplier": "auto",
        "reasoning_effort": "default",
    },
}
EFFORTS = ("default", "low", "medium", "high")


def parse_create(body: Any) -> JobSpec:
    """Check a create body field by field; the first problem raises a 400."""
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    unknown = [key for key in body if key not in FIELDS]
    if unknown:
        raise bad_request(f"Unrecognized request argument supplied: {unknown[0]}")
    model = _required_str(body, "model")
    training_file = _required_str(body, "training_file")
    method_type, extra, hyper = _method(body)
    return JobSpec(
        model=model,
        base_model=model,
        training_file=training_file,
        validation_file=_optional_str(body, "validation_file"),
        suffix=_suffix(body.get("suffix")),
        seed=_seed(body.get("seed")),
        metadata=_metadata(body.get("metadata")),
        integrations=_integrations(body.get("integrations")),
        method_type=method_type,
        method_extra=extra,
        hyperparameters=hyper,
    )


def _required_str(body: dict[str, Any], name: str) -> str:
    """A required non-empty string."""
    value = body.get(name)
    if value is None:
        raise missing(name)
    if not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    if not value:
        raise _too_short(name, value, 1)
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    """An optional string (null allowed)."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    return value


def _too_short(name: str, value: str, minimum: int) -> Exception:
    """OpenAI's string_below_min_length error."""
    return bad_request(
        f"Invalid '{name}': string too short. Expected a string with minimum length {minimum}, "
        f"but got a string with length {len(value)} instead.",
        name,
        "string_below_min_length",
    )


def _too_long(name: str, value: str, maximum: int) -> Exception:
    """OpenAI's string_above_max_length error."""
    return bad_request(
        f"Invalid '{name}': string too long. Expected a string with maximum length {maximum}, "
        f"but got a string with length {len(value)} instead.",
        name,
        "string_above_max_length",
    )


def _suffix(value: Any) -> str | None:
    """1 to 64 characters, or null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_type("suffix", "a string", value)
    if not value:
        raise _too_short("suffix", value, 1)
    if len(value) > 64:
        raise _too_long("suffix", value, 64)
    return value


def _seed(value: Any) -> int | None:
    """0..2147483647, or null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type("seed", "an integer", value)
    if not 0 <= value <= MAX_SEED:
        raise _out_of_range("seed", value, 0, MAX_SEED)
    return value


def _out_of_range(name: str, value: float, low: float, high: float) -> Exception:
    """A number outside its allowed interval."""
    return bad_request(
        f"Invalid '{name}': expected a value between {low} and {high}, but got {value} instead.",
        name,
        "invalid_value",
    )


def _metadata(value: Any) -> dict[str, str] | None:
    """At most 16 pairs, keys <= 64 characters, string values <= 512 characters."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_type("metadata", "an object", value)
    if len(value) > 16:
        raise bad_request(
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead.",
            "metadata",
            "object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > 64:
            raise _too_long("metadata", key, 64)
        if not isinstance(item, str):
            raise invalid_type(f"metadata.{key}", "a string", item)
        if len(item) > 512:
            raise _too_long(f"metadata.{key}", item, 512)
    return dict(value)


def _integrations(value: Any) -> list[dict[str, Any]] | None:
    """At most 5 W&B integrations, each with a project."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_type("integrations", "an array", value)
    if len(value) > 5:
        raise bad_request("Invalid 'integrations': at most 5 are allowed.", "integrations")
    for index, item in enumerate(value):
        param = f"integrations[{index}]"
        if not isinstance(item, dict) or item.get("type") != "wandb":
            raise bad_request(f"Invalid '{param}.type': only 'wandb' is supported.", param)
        wandb = item.get("wandb")
        if not isinstance(wandb, dict) or not isinstance(wandb.get("project"), str):
            raise missing(f"{param}.wandb.project")
    return [dict(item) for item in value]


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(method type, other method settings, requested hyperparameters with "auto" filled in)."""
    legacy = _hyper_object(body.get("hyperparameters"), "hyperparameters")
    method = body.get("method")
    if method is None:
        return "supervised", {}, _with_autos("supervised", legacy, "hyperparameters")
    if not isinstance(method, dict):
        raise invalid_type("method", "an object", method)
    kind = method.get("type")
    if kind not in METHODS:
        raise bad_request(
            f"Invalid value: {kind!r}. Supported values are: 'supervised', 'dpo', and "
            "'reinforcement'.",
            "method.type",
            "invalid_value",
        )
    settings = method.get(kind) or {}
    if not isinstance(settings, dict):
        raise invalid_type(f"method.{kind}", "an object", settings)
    if kind == "reinforcement" and "grader" not in settings:
        raise missing("method.reinforcement.grader")
    param = f"method.{kind}.hyperparameters"
    requested = _hyper_object(settings.get("hyperparameters"), param)
    # Legacy top-level values fill only what `method` leaves unset: lenient, documented.
    merged = {**legacy, **requested} if kind == "supervised" else requested
    extra = {key: value for key, value in settings.items() if key != "hyperparameters"}
    return kind, extra, _with_autos(kind, merged, param)


def _hyper_object(value: Any, param: str) -> dict[str, Any]:
    """A hyperparameters object (or nothing)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return dict(value)


def _with_autos(kind: str, requested: dict[str, Any], param: str) -> dict[str, Any]:
    """Check each value; unset ones take their defaults ("auto")."""
    defaults = HYPER_DEFAULTS[kind]
    for key, value in requested.items():
        if key not in defaults:
            raise bad_request(
                f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}", "unknown_parameter"
            )
        _check_hyper(key, value, f"{param}.{key}")
    return {**defaults, **requested}


def _check_hyper(key: str, value: Any, param: str) -> None:
    """ "auto" or a number in OpenAI's range (reasoning_effort: one of EFFORTS)."""
    if value == "auto" and key != "reasoning_effort":
        return
    if key == "reasoning_effort":
        if value not in EFFORTS:
            raise bad_request(f"Invalid value: {value!r}. Supported values are: {EFFORTS}.", param)
        return
    integer = key in ("n_epochs", "batch_size", "eval_interval", "eval_samples")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (integer and not isinstance(value, int)):
        raise invalid_type(
            param, "an integer or 'auto'" if integer else "a number or 'auto'", value
        )
    low, high, exclusive_low = _range(key)
    if value > high or value < low or (exclusive_low and value == low):
        raise _out_of_range(param, value, low, high)


def _range(key: str) -> tuple[float, float, bool]:
    """(low, high, low excluded) for one hyperparameter."""
    ranges = {
        "n_epochs": (1, 50, False),
        "batch_size": (1, 256, False),
        "beta": (0, 2, True),
        "compute_multiplier": (0.00001, 10, True),
    }
    return ranges.get(key, (0, float("inf"), key == "learning_rate_multiplier"))
