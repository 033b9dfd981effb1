"""The configured graders and the honest comparison, over HTTP and the worker's task.

Against the emulator (deterministic answers): base models answer a multiple-choice prompt with a
letter and any other prompt with a fixed sentence naming the model.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import evals as eval_tasks
from ftq.shared.evals import judge
from ftq.shared.models import Eval
from ftq.shared.providers.base import ChatResult
from tests.api.test_evals import CHAT, OTHER, create_eval, mc_jsonl, ready, run_evals_in
from tests.factories import auth, chat_jsonl, create_team
from tests.unit.test_providers_kit import MODEL, Emulator
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

SCHEMA: dict[str, Any] = {"type": "object", "required": ["answer"]}


def items_of(client: TestClient, team: dict[str, Any], eval_id: str) -> list[dict[str, Any]]:
    """The items download, parsed."""
    response = client.get(f"/v1/evals/{eval_id}/items", headers=auth(team))
    return [json.loads(line) for line in response.text.splitlines()]


def test_results_carry_intervals_and_a_paired_comparison(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(30))
    body = create_eval(
        client, team, dataset=dataset["id"], models=[MODEL, OTHER], grader="choice"
    ).json()
    run_evals_in(session, monkeypatch, fresh_emulator)
    assert eval_tasks.run(body["id"]) == "finished"
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    first, second = done["results"]
    for result in (first, second):
        low, high = result["interval"]
        assert low <= result["score"] <= high
    assert first["comparison"] is None
    comparison = second["comparison"]
    lines = items_of(client, team, body["id"])
    scores = {(x["model"], x["index"]): x["score"] for x in lines}
    diffs = {i: scores[(OTHER, i)] - scores[(MODEL, i)] for i in range(30)}
    assert comparison["against"] == MODEL and comparison["n"] == 30
    assert comparison["improved"] == sum(d > 0 for d in diffs.values())
    assert comparison["regressed"] == sum(d < 0 for d in diffs.values())
    assert comparison["improved_items"] == sorted(i for i, d in diffs.items() if d > 0)[:20]
    assert comparison["difference"] == pytest.approx(second["score"] - first["score"])
    low, high = comparison["interval"]
    assert low <= comparison["difference"] <= high
    assert comparison["significant"] == (low > 0 or high < 0)
    again = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    assert again["results"] == done["results"], "seeded: a reread does not wobble"


def test_regex_grader_stores_its_pattern_and_scores_matches(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    body = create_eval(
        client, team, dataset=dataset["id"], models=[MODEL], grader="regex", pattern=r"^[A-E]$"
    )
    assert body.status_code == 201, body.text
    created = body.json()
    assert created["grader"] == "regex"
    assert created["grader_config"] == {"pattern": "^[A-E]$"}
    run_evals_in(session, monkeypatch, fresh_emulator)
    assert eval_tasks.run(created["id"]) == "finished"
    done = client.get(f"/v1/evals/{created['id']}", headers=auth(team)).json()
    [result] = done["results"]
    assert result["score"] == 1.0 and result["interval"] == [1.0, 1.0]
    assert all(re.fullmatch(r"[A-E]", x["output"]) for x in items_of(client, team, created["id"]))


def test_json_schema_grader_scores_a_non_json_answer_zero(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, chat_jsonl(10))
    body = create_eval(
        client,
        team,
        dataset=dataset["id"],
        models=[MODEL],
        grader="json_schema",
        json_schema=SCHEMA,
    )
    assert body.status_code == 201, body.text
    created = body.json()
    row = session.get(Eval, created["id"])
    assert row is not None and row.grader_config == {"schema": SCHEMA}
    run_evals_in(session, monkeypatch, fresh_emulator)
    assert eval_tasks.run(created["id"]) == "finished"
    lines = items_of(client, team, created["id"])
    assert lines and all(x["score"] == 0.0 and x["error"] is None for x in lines), lines[0]
    done = client.get(f"/v1/evals/{created['id']}", headers=auth(team)).json()
    assert done["status"] == "completed" and done["results"][0]["score"] == 0.0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"grader": "regex"}, "pattern"),
        ({"grader": "regex", "pattern": "(unclosed"}, "pattern"),
        ({"grader": "json_schema"}, "json_schema"),
        ({"grader": "json_schema", "json_schema": {"type": 12}}, "json_schema"),
        ({"grader": "exact", "pattern": "x"}, "pattern"),
        ({"grader": "json_schema", "json_schema": "not an object"}, "json_schema"),
    ],
)
def test_a_wrong_grader_configuration_is_a_422_naming_the_field(
    client: TestClient, session: Session, fields: dict[str, Any], param: str
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    response = create_eval(client, team, dataset=dataset["id"], models=[MODEL], **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param


def test_a_job_eval_keeps_to_the_graders_without_configuration(client: TestClient) -> None:
    from pydantic import ValidationError

    from ftq.shared.jobs.schemas import JobEvalRequest

    with pytest.raises(ValidationError):
        JobEvalRequest.model_validate({"grader": "regex"})


JUDGE = {"model": OTHER, "rubric": "The letter must be the reference's.", "temperature": 0.2}


def test_the_judge_config_is_stored_and_the_emulators_prose_is_each_items_error(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    response = create_eval(
        client, team, dataset=dataset["id"], models=[MODEL], grader="judge", judge=JUDGE
    )
    assert response.status_code == 201, response.text
    created = response.json()
    stored = created["grader_config"]["judge"]
    assert stored["provider"] == "emulator" and stored["model"] == OTHER
    assert stored["temperature"] == 0.2 and stored["rubric"] == JUDGE["rubric"]
    assert stored["template"] == judge.TEMPLATE and stored["system"] == judge.SYSTEM
    assert stored["template_version"] == judge.TEMPLATE_VERSION
    run_evals_in(session, monkeypatch, fresh_emulator)
    assert eval_tasks.run(created["id"]) == "finished", "an unparseable reply is no crash"
    assert fresh_emulator.calls(CHAT) == 24, "12 answers, 12 judgements"
    lines = items_of(client, team, created["id"])
    assert all(x["output"] and x["score"] is None for x in lines)
    assert all(x["error"].startswith("judge: the judge's reply") for x in lines), lines[0]
    done = client.get(f"/v1/evals/{created['id']}", headers=auth(team)).json()
    assert done["status"] == "failed" and done["error"]["code"] == "provider_failed"
    assert "judge" in done["error"]["message"]


def test_judge_scores_and_reasons_are_recorded(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    created = create_eval(
        client,
        team,
        dataset=dataset["id"],
        models=[MODEL],
        grader="judge",
        judge={**JUDGE, "model": "judge-x", "provider": "emulator"},
    )
    # judge-x is not a model the emulator knows: the team may name any model of a provider.
    assert created.status_code == 201, created.text
    body = created.json()
    run_evals_in(session, monkeypatch, fresh_emulator)
    judged: list[tuple[str, float]] = []

    class Judge:
        """The emulator answers; model judge-x grades (1 when the reference letter is given)."""

        def __init__(self, served: Any) -> None:
            self.served = served

        def __getattr__(self, name: str) -> Any:
            return getattr(self.served, name)

        def complete_chat(self, model: str, messages: list[dict[str, Any]], **kw: Any) -> Any:
            if model != "judge-x":
                return self.served.complete_chat(model, messages, **kw)
            user = messages[-1]["content"]
            reference = user.split("Reference answer(s):\n- ")[1][0]
            answer = user.split("Answer to grade:\n")[1].split("\n\n")[0].strip()
            judged.append((answer, kw["temperature"]))
            score = float(answer == reference)
            return ChatResult(json.dumps({"score": score, "reason": f"{answer} vs {reference}"}))

    monkeypatch.setattr(
        eval_tasks, "get_provider", lambda name: Judge(fresh_emulator.provider(name))
    )
    assert eval_tasks.run(body["id"]) == "finished"
    assert len(judged) == 12 and {t for _, t in judged} == {0.2}
    lines = items_of(client, team, body["id"])
    for x in lines:
        assert x["error"] is None and x["reason"] == f"{x['output']} vs {x['reference']}"
        assert x["score"] == float(x["output"] == x["reference"])
    done = client.get(f"/v1/evals/{body['id']}", headers=auth(team)).json()
    assert done["status"] == "completed"
    assert done["results"][0]["score"] == pytest.approx(sum(x["score"] for x in lines) / 12)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"grader": "judge"}, "judge"),
        ({"grader": "judge", "judge": {"model": OTHER}}, "judge.rubric"),
        ({"grader": "judge", "judge": {**JUDGE, "temperature": 3}}, "judge.temperature"),
        ({"grader": "judge", "judge": {**JUDGE, "provider": "nope"}}, "judge.provider"),
        ({"grader": "exact", "judge": JUDGE}, "judge"),
    ],
)
def test_a_wrong_judge_is_a_422_naming_the_field(
    client: TestClient, session: Session, fields: dict[str, Any], param: str
) -> None:
    team = create_team(client)
    dataset = ready(client, session, team, mc_jsonl(12))
    response = create_eval(client, team, dataset=dataset["id"], models=[MODEL], **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
