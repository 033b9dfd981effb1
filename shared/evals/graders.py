"""Graders: score one model output against its accepted references, from 0 to 1.

- `exact`: equal after collapsing whitespace and case.
- `contains`: a reference appears in the output (same normalisation).
- `choice`: the answer letter A-E read from free text ("The answer is (C).", "c",
  "Answer: B) because ..."); an output that offers two different letters scores 0.
- `bleu`: sacreBLEU's sentence BLEU (effective order) / 100.
- `rouge_l`: rouge-score's ROUGE-L F-measure (Porter stemming).
With several references the best score counts.

Graders configured on the eval (`grader_config`, checked at creation by `check_config`):
- `regex`: 1 when Python's `re.search` finds the eval's `pattern` in the output (anchor it with
  `^...$` for a whole-answer match); references are not used.
- `json_schema`: 1 when the output (an optional Markdown code fence stripped) parses as JSON and
  validates against the eval's `json_schema` (its `$schema`'s draft, 2020-12 by default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, get_args

from ftq.shared.errors import Unprocessable
from ftq.shared.jobs.schemas import GraderName

CONFIGURED_GRADERS: tuple[str, ...] = ("regex", "json_schema")
GRADERS: tuple[str, ...] = get_args(GraderName) + CONFIGURED_GRADERS + ("judge",)
MAX_PATTERN = 1000
# A fenced reply: ```json\n{...}\n``` (the fence and its language tag are not the answer).
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)

LETTERS = "ABCDE"
_WS = re.compile(r"\s+")
# The whole answer is one letter, maybe wrapped: "c", "(C)", "C.", "**C**", "[D]".
_BARE = re.compile(r"^[\s\(\[\*\"'`]*([A-Ea-e])[\s\)\]\*\"'`.:!]*$")
# "answer is (C)", "Answer: B) because", "correct option is D", "choice: **E**", "A or C".
_STATED = re.compile(
    r"\b(?:answer|option|choice)s?\b(?:\s+(?:is|would\s+be|should\s+be|=))?\s*[:\-]?\s*"
    r"[\(\[\*]*\s*([A-E])\b[\)\]\*]*"
    r"(?:\s*(?:or|and|/|,|&)\s*[\(\[\*]*([A-E])\b)?",
    re.IGNORECASE,
)
# A reply that opens with its letter: "B) because ...", "(C) ...", "D. The ...", "E: ...".
_LEADING = re.compile(r"^\s*[\(\[\*]*([A-E])(?:\)|\]|\.|:|\*\*)")
# Letters offered on their own anywhere: "(C)", "C)", or a capital word; "A" before a lower-case
# word (other than "or" / "and") is the article.
_STANDALONE = re.compile(r"\(([A-E])\)|\b([A-E])\)|\b([B-E])\b|\bA\b(?!\s+(?!or\b|and\b)[a-z])")


def normalise(text: str) -> str:
    """Whitespace collapsed, case folded, ends trimmed."""
    return _WS.sub(" ", text).strip().casefold()


def extract_choice(text: str) -> str | None:
    """The one answer letter a reply gives, or None when it gives none or several."""
    bare = _BARE.match(text)
    if bare:
        return bare.group(1).upper()
    stated = _STATED.findall(text)
    if stated:
        letters = {letter.upper() for pair in stated for letter in pair if letter}
        return letters.pop() if len(letters) == 1 else None
    leading = _LEADING.match(text)
    if leading:
        return leading.group(1)
    found = {"".join(groups) or "A" for groups in _STANDALONE.findall(text)}
    return found.pop() if len(found) == 1 else None


def _exact(output: str, reference: str) -> float:
    return float(normalise(output) == normalise(reference))


def _contains(output: str, reference: str) -> float:
    wanted = normalise(reference)
    return float(bool(wanted) and wanted in normalise(output))


def _choice(output: str, reference: str) -> float:
    wanted = extract_choice(reference)
    return float(wanted is not None and extract_choice(output) == wanted)


def _bleu(output: str, reference: str) -> float:
    score = _bleu_metric().sentence_score(output, [reference]).score
    return _unit(score / 100.0)


def _rouge_l(output: str, reference: str) -> float:
    return _unit(_rouge_scorer().score(reference, output)["rougeL"].fmeasure)


@cache
def _bleu_metric() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


SCORERS: dict[str, Callable[[str, str], float]] = {
    "exact": _exact,
    "choice": _choice,
    "contains": _contains,
    "bleu": _bleu,
    "rouge_l": _rouge_l,
}


def grade(
    grader: str, output: str, references: list[str], config: Mapping[str, Any] | None = None
) -> float:
    """The best score of `output` against any accepted reference (0 when there is none); the
    configured graders score `output` against the eval's `config` instead."""
    if grader == "regex":
        return float(_compiled((config or {})["pattern"]).search(output) is not None)
    if grader == "json_schema":
        return _json_schema((config or {})["schema"], output)
    scorer = SCORERS[grader]
    return max((scorer(output, reference) for reference in references), default=0.0)


def check_config(
    grader: str, *, pattern: str | None, json_schema: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The grader's stored configuration, or Unprocessable naming the field that is wrong."""
    given = {"pattern": pattern, "json_schema": json_schema}
    wanted = {"regex": "pattern", "json_schema": "json_schema"}.get(grader)
    # (the judge's configuration is checked by the eval service: it names a provider and model)
    for field, value in given.items():
        if value is not None and field != wanted:
            raise Unprocessable(f"{field} is only for grader {_owner(field)}", param=field)
    if wanted is None:
        return None
    if given[wanted] is None:
        raise Unprocessable(f"grader {grader} needs {wanted}", param=wanted)
    if grader == "regex":
        assert pattern is not None
        if not pattern or len(pattern) > MAX_PATTERN:
            raise Unprocessable(f"pattern is 1 to {MAX_PATTERN} characters", param="pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise Unprocessable(
                f"pattern is not a regular expression: {exc}", param="pattern"
            ) from exc
        return {"pattern": pattern}
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(json_schema).check_schema(json_schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        message = f"json_schema is not a valid JSON Schema{f' at {where}' if where else ''}"
        raise Unprocessable(f"{message}: {exc.message}", param="json_schema") from exc
    return {"schema": json_schema}


def _owner(field: str) -> str:
    return "regex" if field == "pattern" else "json_schema"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _json_schema(schema: dict[str, Any], output: str) -> float:
    fenced = _FENCE.match(output)
    text = fenced.group(1) if fenced else output
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return 0.0
    return float(_validator(json.dumps(schema, sort_keys=True)).is_valid(value))


@cache
def _validator(schema_json: str) -> Any:
    from jsonschema.validators import validator_for

    schema = json.loads(schema_json)
    return validator_for(schema)(schema)
