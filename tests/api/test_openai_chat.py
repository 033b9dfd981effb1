"""`client.chat.completions` of the real openai SDK against ftq (strict), via a served emulator."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy.orm import Session

from ftq.shared.compat import chat
from ftq.shared.models import JobCheckpoint, Team
from ftq.shared.providers.base import ChatResult, ProviderBase, ProviderRetryable
from ftq.shared.settings import reset_settings
from tests.factories import chat_jsonl, create_team, job_row
from tests.openai_kit import sdk
from tests.unit.test_providers_kit import Emulator, emulator, fresh_emulator

__all__ = ["emulator", "fresh_emulator"]  # module fixtures from the provider kit

MODEL = "gpt-4o-mini-2024-07-18"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello, units team."}]


@pytest.fixture
def served(fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """ftq's emulator provider pointed at an emulator served on a loopback port."""
    monkeypatch.setenv("FTQ_EMULATOR_URL", f"{fresh_emulator.root}/v1")
    reset_settings()
    yield fresh_emulator
    monkeypatch.undo()
    reset_settings()


def _team(client: TestClient, name: str = "chat") -> tuple[dict[str, Any], openai.OpenAI]:
    team = create_team(client, name)
    return team, sdk(client, team["api_key"]["key"])


def _direct(emulator: Emulator) -> openai.OpenAI:
    return openai.OpenAI(api_key="x", base_url=f"{emulator.root}/v1", max_retries=0)


def _tuned_at_emulator(emulator: Emulator) -> tuple[str, str]:
    """(fine-tuned model, its final-step checkpoint) of a job the emulator ran to the end.

    The final step's checkpoint answers every trained prompt as taught; an earlier one answers
    only a share of them (services/emulator/chat.py), which would make the test depend on ids.
    """
    direct = _direct(emulator)
    file = direct.files.create(file=("t.jsonl", io.BytesIO(chat_jsonl(12))), purpose="fine-tune")
    job = direct.fine_tuning.jobs.create(model=MODEL, training_file=file.id, suffix="chat")
    emulator.control.advance(job.id)
    model = direct.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    checkpoints = direct.fine_tuning.jobs.checkpoints.list(job.id).data
    assert model and checkpoints
    newest = checkpoints[0]  # OpenAI lists checkpoints newest first
    assert newest.step_number == max(c.step_number for c in checkpoints)
    return model, newest.fine_tuned_model_checkpoint


def test_a_base_model_completion_is_the_providers_answer(
    client: TestClient, served: Emulator
) -> None:
    _, api = _team(client)
    completion = api.chat.completions.create(model=MODEL, messages=HELLO)
    direct = _direct(served).chat.completions.create(model=MODEL, messages=HELLO)
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL and completion.usage is not None
    assert completion.choices[0].message.content == direct.choices[0].message.content
    assert served.calls("POST /v1/chat/completions") == 2


def test_a_stream_is_chunks_whose_deltas_make_the_answer(
    client: TestClient, served: Emulator
) -> None:
    _, api = _team(client)
    whole = api.chat.completions.create(model=MODEL, messages=HELLO)
    events = api.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(events)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_a_stream_is_served_as_uncached_server_sent_events(
    client: TestClient, served: Emulator
) -> None:
    team, _ = _team(client)
    body = {"model": f"emulator:{MODEL}", "messages": HELLO, "stream": True}
    answer = client.post(
        "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {team['api_key']['key']}"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.text.startswith("data: {") and answer.text.endswith("data: [DONE]\n\n")


def test_a_teams_tuned_model_and_checkpoint_go_to_its_jobs_provider(
    client: TestClient, session: Session, served: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, api = _team(client)
    model, checkpoint = _tuned_at_emulator(served)
    row = job_row(
        session, session.get(Team, team["id"]), status="succeeded", fine_tuned_model=model
    )
    session.add(
        JobCheckpoint(
            job_id=row.id,
            provider_checkpoint_id="ckpt-1",
            step_number=1,
            fine_tuned_model_checkpoint=checkpoint,
            metrics={},
        )
    )
    session.flush()
    # The default provider is unreachable: only the job's own provider can answer.
    monkeypatch.setenv("FTQ_PROVIDER", "openai")
    monkeypatch.setenv("FTQ_OPENAI_API_KEY", "sk-ftq-own-key-0123456789")
    monkeypatch.setenv("FTQ_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    reset_settings()
    prompt: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "How many metres is 3 kilometres?"}
    ]
    for name in (model, checkpoint):
        answer = api.chat.completions.create(model=name, messages=prompt)
        assert answer.choices[0].message.content == "3 km = 3000 m.", "taught by its training"
        assert answer.model == name
    with pytest.raises(openai.APIStatusError) as caught:
        api.chat.completions.create(model=MODEL, messages=prompt)
    assert caught.value.status_code == 502 and caught.value.code == "provider_unreachable"
    assert "sk-ftq" not in caught.value.message and "sk-ftq" not in caught.value.response.text


def test_another_teams_tuned_model_does_not_exist(
    client: TestClient, session: Session, served: Emulator
) -> None:
    owner, _ = _team(client, "owner")
    model, _ = _tuned_at_emulator(served)
    job_row(session, session.get(Team, owner["id"]), status="succeeded", fine_tuned_model=model)
    _, other = _team(client, "other")
    for name in (model, f"emulator:{model}"):
        with pytest.raises(openai.NotFoundError) as caught:
            other.chat.completions.create(model=name, messages=HELLO)
        assert caught.value.code == "model_not_found" and caught.value.param == "model"
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["message"] == (
            f"The model '{model}' does not exist or you do not have access to it."
        )
    assert served.calls("POST /v1/chat/completions") == 0


def test_an_unknown_or_unconfigured_provider_is_a_400_naming_the_choices(
    client: TestClient, served: Emulator
) -> None:
    _, api = _team(client)
    with pytest.raises(openai.BadRequestError) as unknown:
        api.chat.completions.create(model=f"nope:{MODEL}", messages=HELLO)
    assert unknown.value.param == "model"
    assert "'nope'" in unknown.value.message and "emulator, openai, azure-openai, local" in (
        unknown.value.message
    )
    with pytest.raises(openai.BadRequestError) as unconfigured:
        api.chat.completions.create(model=f"azure-openai:{MODEL}", messages=HELLO)
    assert unconfigured.value.code == "provider_not_configured"
    assert "configured here: emulator" in unconfigured.value.message


def test_provider_errors_keep_their_status_and_openai_body(
    client: TestClient, served: Emulator
) -> None:
    _, api = _team(client)
    with pytest.raises(openai.NotFoundError) as missing:
        api.chat.completions.create(model="emulator:gpt-nothing", messages=HELLO)
    assert missing.value.code == "model_not_found"
    assert missing.value.type == "invalid_request_error"
    assert "gpt-nothing" in missing.value.message
    served.control.faults(next_429=2, retry_after_ms=1500)
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as limited:
            api.chat.completions.create(model=MODEL, messages=HELLO, stream=stream)
        assert limited.value.code == "rate_limit_exceeded"
        assert limited.value.type == "rate_limit_error"
        headers = limited.value.response.headers
        assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "1500"


def test_missing_messages_is_openais_400(client: TestClient, served: Emulator) -> None:
    team, _ = _team(client)
    answer = client.post(
        "/v1/chat/completions",
        json={"model": MODEL},
        headers={"authorization": f"Bearer {team['api_key']['key']}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Missing required parameter: 'messages'."


class Recording(ProviderBase):
    """A provider that answers from `complete_chat` (ProviderBase's defaults) and keeps bodies."""

    name = "recording"

    def __init__(self, broken: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.broken = broken

    def complete_chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> ChatResult:
        return ChatResult(text=f"{model} says hi, at most {max_tokens}", prompt_tokens=4)

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        return super().chat_completion(body)

    def chat_completion_stream(self, body: dict[str, Any]) -> Iterator[bytes]:
        events = super().chat_completion_stream(body)
        yield next(events)
        if self.broken:
            raise ProviderRetryable("provider stream broke: ReadError")
        yield from events


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Recording:
    provider = Recording()
    monkeypatch.setattr(chat, "provider_named", lambda name: provider)
    return provider


def test_every_field_the_caller_sent_reaches_the_provider(
    client: TestClient, recording: Recording
) -> None:
    _, api = _team(client)
    answer = api.chat.completions.create(
        model=f"emulator:{MODEL}",
        messages=HELLO,
        max_completion_tokens=7,
        seed=3,
        extra_body={"ftq_future_parameter": {"nested": [1, 2]}},
    )
    assert answer.choices[0].message.content == f"{MODEL} says hi, at most 7"
    (body,) = recording.bodies
    assert body["model"] == MODEL, "the provider prefix is stripped"
    assert body["ftq_future_parameter"] == {"nested": [1, 2]}
    assert body["seed"] == 3 and body["max_completion_tokens"] == 7 and body["messages"] == HELLO


def test_a_provider_without_streaming_streams_its_whole_answer_as_chunks(
    client: TestClient, recording: Recording
) -> None:
    _, api = _team(client)
    events = api.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    chunks = list(events)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == f"{MODEL} says hi, at most None"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert len({c.id for c in chunks}) == 1


def test_a_stream_broken_half_way_ends_with_an_error_event(
    client: TestClient, recording: Recording
) -> None:
    recording.broken = True
    _, api = _team(client)
    events = api.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(events)
    assert "could not be reached or broke off" in caught.value.message
