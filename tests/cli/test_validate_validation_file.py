"""`ftq validate TRAIN --validation-file VALID`: train/validation overlap with its lines, and the
quality section in the human output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ftq.services.cli.datasets import datasets_cli
from tests.factories import chat_line
from tests.unit._data import require_shared_data

runner = CliRunner()


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_overlap_is_printed_with_lines(tmp_path: Path) -> None:
    rows = [json.dumps(chat_line(i)) for i in range(30)]
    train = _write(tmp_path / "train.jsonl", rows[:20])
    valid = _write(tmp_path / "valid.jsonl", rows[18:])  # lines 1-2 are training lines 19-20
    result = runner.invoke(datasets_cli, ["validate", str(train), "--validation-file", str(valid)])
    assert result.exit_code == 0, result.output
    assert "Quality (warnings only)" in result.output
    assert "validation overlap, exact: 2: lines 1 (~19), 2 (~20)" in result.output
    assert f"Validation file {valid}: 12 examples, valid" in result.output


def test_overlap_in_json(tmp_path: Path) -> None:
    rows = [json.dumps(chat_line(i)) for i in range(30)]
    train = _write(tmp_path / "train.jsonl", rows[:20])
    valid = _write(tmp_path / "valid.jsonl", [rows[5], *rows[20:]])
    result = runner.invoke(
        datasets_cli, ["validate", str(train), "--validation-file", str(valid), "--json"]
    )
    assert result.exit_code == 0, result.output
    overlap = json.loads(result.output)["quality"]["overlap"]
    assert overlap["leaked"] is True
    assert overlap["exact"]["lines"] == [1] and overlap["exact"]["matches"] == [6]
    assert overlap["n_validation_examples"] == 11


def test_invalid_validation_file_fails_the_command(tmp_path: Path) -> None:
    rows = [json.dumps(chat_line(i)) for i in range(20)]
    train = _write(tmp_path / "train.jsonl", rows)
    valid = _write(tmp_path / "valid.jsonl", ["{not json", *rows[:3]])
    result = runner.invoke(datasets_cli, ["validate", str(train), "--validation-file", str(valid)])
    assert result.exit_code == 1, result.output
    assert "invalid" in result.output


def test_quality_section_in_human_output_and_no_quality(tmp_path: Path) -> None:
    rows = [json.dumps(chat_line(i)) for i in range(12)]
    rows.append(rows[2])
    path = _write(tmp_path / "d.jsonl", rows)
    result = runner.invoke(datasets_cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "exact duplicates: 1: lines 13 (~3)" in result.output
    off = runner.invoke(datasets_cli, ["validate", str(path), "--no-quality", "--json"])
    assert json.loads(off.output)["quality"] is None


def test_real_split_leak(tmp_path: Path) -> None:
    data = require_shared_data()
    rows = (data / "gsm8k_chat_train.jsonl").read_text(encoding="utf-8").splitlines()
    train = _write(tmp_path / "train.jsonl", rows[:400])
    valid = _write(tmp_path / "valid.jsonl", rows[395:])
    result = runner.invoke(
        datasets_cli, ["validate", str(train), "--validation-file", str(valid), "--json"]
    )
    assert result.exit_code == 0, result.output
    overlap = json.loads(result.output)["quality"]["overlap"]
    assert overlap["exact"]["count"] == 5
    assert overlap["exact"]["matches"] == [396, 397, 398, 399, 400]
