"""The configured graders (regex, json_schema), their configuration checks, and the judge."""

from __future__ import annotations

from typing import Any

import pytest

from ftq.shared.errors import Unprocessable
from ftq.shared.evals import judge, runner
from ftq.shared.evals.graders import check_config, grade
from ftq.shared.evals.runner import Answer
from ftq.shared.providers.base import ChatResult, ProviderRejected

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ("The total is 42 km.", 1.0),
        ("42", 1.0),
        ("forty-two", 0.0),
        ("", 0.0),
    ],
)
def test_regex_searches_the_answer(output: str, score: float) -> None:
    config = check_config("regex", pattern=r"\b42\b", json_schema=None)
    assert grade("regex", output, ["ignored"], config) == score


def test_an_anchored_pattern_is_a_whole_answer_match() -> None:
    config = check_config("regex", pattern=r"^\s*(yes|no)\s*$", json_schema=None)
    assert grade("regex", " yes ", [], config) == 1.0
    assert grade("regex", "yes, I think", [], config) == 0.0


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ('{"city": "Lyon", "population": 522000}', 1.0),
        ('```json\n{"city": "Lyon", "population": 522000}\n```', 1.0),
        ('{"city": "Lyon", "population": -1}', 0.0),
        ('{"city": "Lyon"}', 0.0),
        ('{"city": "Lyon", "population": 1, "extra": true}', 0.0),
        ("Lyon has 522000 people", 0.0),
        ('Sure! {"city": "Lyon", "population": 1}', 0.0),
        ("", 0.0),
    ],
)
def test_json_schema_parses_and_validates(output: str, score: float) -> None:
    config = check_config("json_schema", pattern=None, json_schema=SCHEMA)
    assert config == {"schema": SCHEMA}
    assert grade("json_schema", output, [], config) == score


@pytest.mark.parametrize(
    ("grader", "pattern", "schema", "param"),
    [
        ("regex", None, None, "pattern"),
        ("regex", "(unclosed", None, "pattern"),
        ("regex", "", None, "pattern"),
        ("regex", "x" * 1001, None, "pattern"),
        ("json_schema", None, None, "json_schema"),
        ("json_schema", None, {"type": "no-such-type"}, "json_schema"),
        ("json_schema", None, {"properties": {"a": {"minimum": "zero"}}}, "json_schema"),
        ("exact", "x", None, "pattern"),
        ("regex", "x", SCHEMA, "json_schema"),
    ],
)
def test_a_wrong_configuration_names_its_field(
    grader: str, pattern: str | None, schema: dict[str, Any] | None, param: str
) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_config(grader, pattern=pattern, json_schema=schema)
    assert caught.value.param == param


def test_graders_without_configuration_store_none() -> None:
    assert check_config("exact", pattern=None, json_schema=None) is None
    assert grade("exact", "Paris", ["paris"]) == 1.0


# -- the judge ---------------------------------------------------------------------------------


class StubJudge:
    """A provider whose chat answers a fixed reply, recording what it was asked."""

    name = "stub"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.asked: list[tuple[str, list[dict[str, Any]], float]] = []

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        self.asked.append((model, messages, temperature))
        if isinstance(self.reply, Exception):
            raise self.reply
        return ChatResult(self.reply)


JUDGE = judge.stored_config(
    provider="stub", model="judge-model", rubric="Same city counts.", temperature=0.3
)
ANSWER = Answer(index=3, model="m", output="Lyon, I think", error=None, attempts=1)


def judged(provider: StubJudge, answer: Answer = ANSWER) -> Answer:
    return runner.judged(
        provider,  # type: ignore[arg-type]
        JUDGE,
        answer,
        "Which city?",
        ["Lyon"],
        limiter=runner.RateLimiter(0),
        policy=runner.RetryPolicy(max_retries=1, sleep=lambda _: None),
    )


@pytest.mark.parametrize(
    ("reply", "score", "reason"),
    [
        ('{"score": 1, "reason": "same city"}', 1.0, "same city"),
        ('```json\n{"score": 0.5, "reason": "hedged"}\n```', 0.5, "hedged"),
        ('Here you go: {"score": 0, "reason": "wrong"} Done.', 0.0, "wrong"),
        ('{"score": 0.25}', 0.25, ""),
    ],
)
def test_judge_replies_are_parsed(reply: str, score: float, reason: str) -> None:
    assert judge.parse_reply(reply) == (score, reason)


@pytest.mark.parametrize(
    "reply",
    [
        "The answer is right.",
        '{"score": "high", "reason": "x"}',
        '{"score": 1.5, "reason": "x"}',
        '{"score": true}',
        '{"score": 1, "reason": "x"',
        "[1, 2]",
        "",
    ],
)
def test_an_unparseable_judge_reply_is_refused(reply: str) -> None:
    with pytest.raises(judge.JudgeReplyError):
        judge.parse_reply(reply)


def test_the_judge_is_asked_with_the_stored_template_model_and_temperature() -> None:
    stub = StubJudge('{"score": 0.9, "reason": "same city, hedged"}')
    got = judged(stub)
    assert (got.score, got.reason, got.error, got.output) == (
        0.9,
        "same city, hedged",
        None,
        "Lyon, I think",
    )
    assert got.attempts == 2
    [(model, messages, temperature)] = stub.asked
    assert (model, temperature) == ("judge-model", 0.3)
    assert messages[0] == {"role": "system", "content": judge.SYSTEM}
    user = messages[1]["content"]
    assert "Same city counts." in user and "Which city?" in user
    assert "- Lyon" in user and "Lyon, I think" in user


def test_an_unparseable_reply_or_a_failing_judge_is_the_items_error() -> None:
    got = judged(StubJudge("Looks fine to me."))
    assert got.score is None and got.output == "Lyon, I think"
    assert got.error is not None and got.error.startswith("judge: ")
    failed = judged(StubJudge(ProviderRejected("no such model", code="model_not_found")))
    assert failed.score is None and failed.error == "judge: no such model"
    unanswered = Answer(index=1, model="m", output=None, error="boom", attempts=1)
    stub = StubJudge("{}")
    assert judged(stub, unanswered) == unanswered and not stub.asked
