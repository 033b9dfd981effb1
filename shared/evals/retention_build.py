"""Build the shipped retention suite from the benchmark items an lm-eval wheel carries.

    pip download lm-eval==0.4.13 --no-deps -d /tmp/pkgs
    python -m ftq.shared.evals.retention_build /tmp/pkgs/lm_eval-0.4.13-py3-none-any.whl

lm-eval (EleutherAI, MIT) ships, inside its wheel, the MMLU dev-split questions of its
`mmlu/flan_cot_fewshot` tasks (Hendrycks et al., MIT) and the BIG-Bench Hard exemplars of its
`bbh/fewshot` tasks (Suzgun et al., MIT). This keeps each multiple-choice question with its
options and answer letter (the chain-of-thought rationales are dropped), skips items the wheel
carries mangled (control characters, a rationale leaked into the question) or with options past
E (the `choice` grader reads A-E), drops duplicates, and writes them in source order after one
header line. Nothing is sampled here: the seeded sample is drawn when an eval loads the suite.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import Any

import yaml

from ftq.shared.evals.retention import SUITE_NAME, SUITE_PATH

MMLU_DIR = "lm_eval/tasks/mmlu/flan_cot_fewshot/"
BBH_DIR = "lm_eval/tasks/bbh/fewshot/"
INSTRUCTION = "Answer with the letter of the correct option."
SOURCE = (
    "MMLU dev split (Hendrycks et al., MIT) and BIG-Bench Hard exemplars (Suzgun et al., MIT), "
    "as shipped in the lm-eval wheel (EleutherAI, MIT)"
)
_ANSWER = re.compile(r"answer is \(([A-Z])\)")
_OPTION = re.compile(r"\(([A-Z])\)\s*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads lm-eval's `!function` tags as nothing (only samples are wanted)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _yaml(wheel: zipfile.ZipFile, name: str) -> dict[str, Any]:
    data = yaml.load(wheel.read(name), Loader=_Loader)  # a SafeLoader subclass
    return data if isinstance(data, dict) else {}


def _samples(data: dict[str, Any]) -> list[dict[str, Any]]:
    config = data.get("fewshot_config") or {}
    return [s for s in config.get("samples") or [] if isinstance(s, dict)]


def _options(line: str) -> list[tuple[str, str]] | None:
    """`(A) x (B) y ...` as [(letter, text)], or None unless the letters run A, B, C... to E."""
    parts = _OPTION.split(line.strip())
    if parts[0].strip():
        return None
    pairs = [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    letters = [letter for letter, _ in pairs]
    if len(pairs) < 2 or letters != list("ABCDE"[: len(pairs)]) or not all(t for _, t in pairs):
        return None
    return pairs


def _prompt(intro: str, body: str, options: list[tuple[str, str]]) -> str:
    lines = "\n".join(f"({letter}) {text}" for letter, text in options)
    return f"{intro}\n\n{body.strip()}\n{lines}\n\n{INSTRUCTION}"


def mmlu(wheel: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    """MMLU's dev questions, one subject file after another."""
    names = sorted(n for n in wheel.namelist() if n.startswith(MMLU_DIR) and n.endswith(".yaml"))
    for name in names:
        data = _yaml(wheel, name)
        subject = str(data.get("dataset_name") or "")
        for sample in _samples(data):
            question, target = str(sample.get("question", "")), str(sample.get("target", ""))
            lines = question.split("\n")
            answers = _ANSWER.findall(target)
            options = _options(lines[-1]) if lines[-1].startswith("(A)") else None
            body = "\n".join(lines[:-1]).strip()
            if not subject or not answers or options is None or not body:
                continue
            if _CONTROL.search(question) or "actorial" in question:
                continue  # mangled in the wheel (a `\f` of a rationale read as a form feed)
            if answers[-1] not in {letter for letter, _ in options}:
                continue
            topic = subject.replace("_", " ")
            intro = f"The following is a multiple choice question about {topic}."
            yield _item(_prompt(intro, body, options), answers[-1], f"mmlu/{subject}")


def bbh(wheel: zipfile.ZipFile) -> Iterator[dict[str, Any]]:
    """BIG-Bench Hard's multiple-choice exemplars (answers `(A)`..`(E)`)."""
    names = sorted(n for n in wheel.namelist() if n.startswith(BBH_DIR) and n.endswith(".yaml"))
    for name in names:
        data = _yaml(wheel, name)
        task = Path(name).stem
        intro = str(data.get("description") or "").strip()
        for sample in _samples(data):
            given, target = str(sample.get("input", "")), str(sample.get("target", "")).strip()
            answer = re.fullmatch(r"\(([A-E])\)", target)
            body, _, listed = given.partition("\nOptions:\n")
            options = _options(" ".join(listed.split("\n"))) if listed else None
            if not intro or answer is None or options is None or _CONTROL.search(given):
                continue
            yield _item(_prompt(intro, body, options), answer.group(1), f"bbh/{task}")


def _item(prompt: str, answer: str, source: str) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": prompt}], "ideal": answer, "source": source}


def _version(wheel: zipfile.ZipFile) -> str:
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return str(Parser().parsestr(wheel.read(meta).decode())["Version"])


def build(wheel_path: Path, out: Path) -> int:
    """Write the suite from an lm-eval wheel; the number of items written."""
    with zipfile.ZipFile(wheel_path) as wheel:
        seen: set[str] = set()
        items = []
        for item in [*mmlu(wheel), *bbh(wheel)]:
            key = item["input"][0]["content"].split("\n\n", 1)[-1]  # same exemplar, other task
            if key not in seen:
                seen.add(key)
                items.append(item)
        header = {
            "suite": {
                "name": SUITE_NAME,
                "source": SOURCE,
                "package": "lm-eval",
                "version": _version(wheel),
                "licence": "MIT",
                "grader": "choice",
                "items": len(items),
            }
        }
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(item, ensure_ascii=False) for item in items]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(items)


def main() -> None:
    """`python -m ftq.shared.evals.retention_build WHEEL [--out PATH]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="lm_eval-<version>-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=SUITE_PATH)
    args = parser.parse_args()
    print(f"{build(args.wheel, args.out)} items written to {args.out}")


if __name__ == "__main__":
    main()
