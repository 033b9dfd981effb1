"""`ftq validate`, `ftq convert`, `ftq split` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ftq.services.cli.datasets import datasets_cli
from ftq.shared.datasets.validation import validate_file

runner = CliRunner()


def chat_file(path: Path, n: int = 12, bad_line: int | None = None) -> Path:
    lines = []
    for i in range(n):
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Short answers."},
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": str(2 * i)},
        ]
        if bad_line == i + 1:
            messages[2]["weight"] = 5
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_valid_file(tmp_path: Path) -> None:
    result = runner.invoke(datasets_cli, ["validate", str(chat_file(tmp_path / "d.jsonl"))])
    assert result.exit_code == 0, result.output
    assert "Valid" in result.output
    assert "12 examples, chat" in result.output
    assert "Estimated cost: $0.01 at $3.00 per 1M tokens" in result.output


def test_validate_invalid_file_names_line_and_code(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl", bad_line=4)
    result = runner.invoke(datasets_cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "invalid_weight" in result.output
    assert "messages[2].weight" in result.output
    assert "Invalid" in result.output


def test_validate_json_is_the_report(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl", bad_line=2)
    result = runner.invoke(datasets_cli, ["validate", str(path), "--json", "-m", "gpt-4o"])
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    expected = validate_file(path, model="gpt-4o").model_dump(mode="json")
    printed.pop("elapsed_seconds")
    expected.pop("elapsed_seconds")
    assert printed == expected
    assert printed["errors"]["items"][0] == {
        "line": 2,
        "code": "invalid_weight",
        "param": "messages[2].weight",
        "message": "messages[2].weight must be 0 or 1, not a number 5",
    }


def test_validate_eval_purpose(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl", n=3)
    assert runner.invoke(datasets_cli, ["validate", str(path)]).exit_code == 1
    result = runner.invoke(datasets_cli, ["validate", str(path), "--purpose", "eval"])
    assert result.exit_code == 0, result.output


def test_validate_unknown_model(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl")
    result = runner.invoke(datasets_cli, ["validate", str(path), "--model", "gpt-9"])
    assert result.exit_code == 2
    assert "cannot be fine-tuned" in result.output


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(datasets_cli, ["validate", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2


def test_convert_then_validate(tmp_path: Path) -> None:
    src = tmp_path / "evals.jsonl"
    src.write_text(
        "".join(
            json.dumps({"input": [{"role": "user", "content": f"q{i}"}], "ideal": "A"}) + "\n"
            for i in range(10)
        )
    )
    out = tmp_path / "chat.jsonl"
    result = runner.invoke(datasets_cli, ["convert", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Converted 10 records" in result.output
    assert runner.invoke(datasets_cli, ["validate", str(out)]).exit_code == 0


def test_convert_failure_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "evals.jsonl"
    src.write_text('{"input": [], "ideal": "A"}\n')
    out = tmp_path / "chat.jsonl"
    result = runner.invoke(datasets_cli, ["convert", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert "line 1" in result.output
    assert not out.exists()


def test_split_command(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl", n=20)
    prefix = tmp_path / "out"
    result = runner.invoke(
        datasets_cli, ["split", str(path), "--fraction", "0.25", "--seed", "3", "-o", str(prefix)]
    )
    assert result.exit_code == 0, result.output
    train = Path(f"{prefix}_train.jsonl").read_text().splitlines()
    valid = Path(f"{prefix}_valid.jsonl").read_text().splitlines()
    assert (len(train), len(valid)) == (15, 5)


def test_split_bad_fraction(tmp_path: Path) -> None:
    path = chat_file(tmp_path / "d.jsonl")
    result = runner.invoke(
        datasets_cli, ["split", str(path), "--fraction", "2", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "fraction" in result.output
