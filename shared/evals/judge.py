"""The `judge` grader: a model of any configured provider grades each answer against a rubric.

The judge is sent `SYSTEM` and `TEMPLATE` filled with the rubric, the question (the item's last
user turn), the accepted reference(s) and the answer, at the eval's judge temperature, and must
reply with one JSON object `{"score": <0..1>, "reason": "..."}` (a Markdown code fence or text
around the object is tolerated; a score outside 0..1 is not). An unparseable reply, or a judge
call that fails, is that item's error: the answer is kept, it gets no score. The template, its
version, the judge's provider, model and temperature are stored on the eval (`grader_config`)
so a score can be reproduced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

TEMPLATE_VERSION = "judge-v1"
SYSTEM = (
    "You are a strict grader. You compare a model's answer with a reference answer following a "
    "rubric, and reply with one JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}.'
)
TEMPLATE = (
    "Rubric:\n{rubric}\n\n"
    "Question:\n{question}\n\n"
    "Reference answer(s):\n{references}\n\n"
    "Answer to grade:\n{answer}\n\n"
    'Reply with {{"score": <0..1>, "reason": "..."}} only.'
)
MAX_REASON = 2000
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeReplyError(ValueError):
    """The judge's reply is not a score and a reason."""


def stored_config(*, provider: str, model: str, rubric: str, temperature: float) -> dict[str, Any]:
    """What the eval keeps of its judge (everything needed to ask it the same way again)."""
    return {
        "provider": provider,
        "model": model,
        "rubric": rubric,
        "temperature": temperature,
        "template_version": TEMPLATE_VERSION,
        "system": SYSTEM,
        "template": TEMPLATE,
    }


def messages(
    config: Mapping[str, Any], question: str, references: list[str], answer: str
) -> list[dict[str, str]]:
    """The judge's chat, from the eval's stored template."""
    listed = "\n".join(f"- {r}" for r in references) or "- (none)"
    user = str(config["template"]).format(
        rubric=config["rubric"], question=question, references=listed, answer=answer
    )
    return [{"role": "system", "content": str(config["system"])}, {"role": "user", "content": user}]


def parse_reply(text: str) -> tuple[float, str]:
    """(score 0..1, reason) from the judge's reply, or JudgeReplyError saying what is wrong."""
    found = _OBJECT.search(text or "")
    if found is None:
        raise JudgeReplyError(f"the judge's reply holds no JSON object: {_clip(text)}")
    try:
        value = json.loads(found.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeReplyError(f"the judge's reply is not JSON: {_clip(text)}") from exc
    if not isinstance(value, dict):
        raise JudgeReplyError(f"the judge's reply is not an object: {_clip(text)}")
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise JudgeReplyError(f"the judge's score is not a number from 0 to 1: {score!r}")
    reason = value.get("reason")
    return float(score), str(reason)[:MAX_REASON] if reason is not None else ""


def _clip(text: str | None) -> str:
    return repr((text or "")[:200])
