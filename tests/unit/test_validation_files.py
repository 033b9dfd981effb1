"""The team's real files in ../shared/data, validated with the counts they are known to have."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftq.shared.datasets.convert import evals_to_chat
from ftq.shared.datasets.validation import ValidationReport, validate_file
from ftq.shared.datasets.validation import parallel as parallel_module
from tests.unit._data import require_shared_data


@pytest.fixture(scope="module")
def data() -> Path:
    return require_shared_data()


def check(data: Path, name: str, **kwargs: object) -> ValidationReport:
    """Validate one shared file."""
    return validate_file(data / name, **kwargs)  # type: ignore[arg-type]


def test_gsm8k_chat_train_is_valid(data: Path) -> None:
    report = check(data, "gsm8k_chat_train.jsonl")
    assert report.ok
    assert (report.format, report.n_examples, report.n_lines) == ("chat", 449, 449)
    assert report.errors.total == 0 and report.warnings.total == 0
    assert report.tokens.messages.min == report.tokens.messages.max == 3
    assert report.auto_n_epochs == 3
    assert report.estimated_cost_usd == pytest.approx(
        report.billing_tokens_per_epoch * 3 * 3.0 / 1e6, abs=1e-4
    )


def test_stock_toolcall_is_valid(data: Path) -> None:
    report = check(data, "stock_toolcall_training.jsonl")
    assert report.ok, report.errors
    assert (report.format, report.n_examples) == ("chat", 86)
    assert report.warnings.total == 0


def test_zava_tool_use_traces_are_valid(data: Path) -> None:
    report = check(data, "zava_datagen_tooluse_sft_valid.jsonl")
    assert report.ok, report.errors
    assert (report.format, report.n_examples) == ("chat", 55)
    assert (report.tokens.messages.min, report.tokens.messages.max) == (13, 21)
    assert report.warnings.total == 0


def test_orca_dpo_is_preference_and_valid(data: Path) -> None:
    report = check(data, "orca_dpo_pairs_validation.jsonl")
    assert report.ok, report.errors
    assert (report.format, report.n_examples, report.n_lines) == ("preference", 284, 284)
    assert report.tokens.total.count == 284


def test_orca_dpo_needs_a_dpo_model(data: Path) -> None:
    report = check(data, "orca_dpo_pairs_validation.jsonl", model="gpt-3.5-turbo-0125")
    assert report.errors.by_code == {"format_unsupported": 1}


def test_cookbook_toy_matches_the_cookbook(data: Path) -> None:
    # The cookbook's notebook prints these figures for this file with cl100k_base.
    report = check(data, "cookbook_toy_chat_fine_tuning.jsonl", model="gpt-3.5-turbo-0125")
    warnings = {(f.code, f.line) for f in report.warnings.items}
    assert warnings == {("missing_system_message", 3), ("missing_user_message", 4)}
    total = report.tokens.total
    assert (total.min, total.max, total.mean, total.p50) == (26, 8032, 1648.4, 45.0)
    assert (report.tokens.assistant.min, report.tokens.assistant.max) == (4, 8000)
    assert report.errors.by_code == {"too_few_examples": 1}
    assert report.auto_n_epochs == 20


def test_cookbook_toy_long_example_over_a_4k_context(data: Path) -> None:
    report = check(data, "cookbook_toy_chat_fine_tuning.jsonl", model="gpt-3.5-turbo-0613")
    long = [f for f in report.errors.items if f.code == "example_too_long"]
    assert [f.line for f in long] == [5]
    assert "8,032 tokens" in long[0].message
    assert report.n_examples_over_context == 1
    assert report.billing_tokens_per_epoch == 4306  # the cookbook's "~4306 tokens"


def test_python_repr_file_every_line_an_error(data: Path) -> None:
    report = check(data, "python_repr_not_json.jsonl")
    assert not report.ok
    assert report.n_examples == 4130
    assert report.errors.by_code == {"invalid_json": 4130}
    assert report.format is None
    assert "json.dumps" in report.errors.items[0].message
    assert report.tokens.total.count == 0


def test_ar_lsat_rejected_then_valid_once_converted(data: Path, tmp_path: Path) -> None:
    report = check(data, "ar_lsat.jsonl")
    assert report.format == "evals"
    assert report.errors.by_code == {"evals_record_not_trainable": 230}
    converted = tmp_path / "ar_lsat_chat.jsonl"
    assert evals_to_chat(data / "ar_lsat.jsonl", converted).converted == 230
    report = validate_file(converted)
    assert report.ok, report.errors
    assert (report.format, report.n_examples) == ("chat", 230)


@pytest.mark.parametrize(
    ("name", "n"), [("ar_lsat.jsonl", 230), ("logiqa.jsonl", 1572), ("reclor.jsonl", 500)]
)
def test_evals_files_are_valid_eval_datasets(data: Path, name: str, n: int) -> None:
    report = check(data, name, purpose="eval")
    assert report.ok, report.errors
    assert (report.format, report.n_examples) == ("evals", n)
    assert report.auto_n_epochs is None and report.estimated_cost_usd is None


def test_simple_three_examples_under_the_minimum(data: Path) -> None:
    report = check(data, "simple_three_examples.jsonl")
    assert report.errors.by_code == {"too_few_examples": 1}
    assert "has 3 example(s)" in report.errors.items[0].message
    assert report.tokens.total.count == 3


def test_weighted_multi_turn_weights_are_accepted(data: Path) -> None:
    report = check(data, "weighted_multi_turn.jsonl")
    assert report.errors.by_code == {"too_few_examples": 1}
    assert report.warnings.total == 0


def test_parallel_ranges_give_the_same_report(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = data / "zava_datagen_tooluse_sft_valid.jsonl"
    serial = validate_file(path, workers=1).model_dump(exclude={"elapsed_seconds"})
    monkeypatch.setattr(parallel_module, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(parallel_module, "MIN_RANGE", 64 << 10)
    ranges = parallel_module.plan(path, path.stat().st_size, 2)
    assert len(ranges) > 10
    parallel = validate_file(path, workers=2).model_dump(exclude={"elapsed_seconds"})
    assert parallel == serial
