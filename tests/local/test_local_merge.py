"""`POST /v1/jobs/{id}/artifacts/merge`: the adapter merged into its base as full safetensors
weights with config and tokenizer, downloadable, computing what base + adapter computes, and
stored once (a second call returns the stored copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ftq.shared.providers.local import merge
from tests.factories import auth, create_team
from tests.local.test_local_serving import Trained
from tests.local.test_local_serving import trained as trained  # fixture


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How many metres is 7 kilometres?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        return model(**prompt).logits


def _download(client: TestClient, team: dict, items: list[dict], folder: Path) -> None:
    folder.mkdir()
    for item in items:
        got = client.get(item["url"], headers=auth(team))
        assert got.status_code == 200 and len(got.content) == item["bytes"]
        (folder / item["name"]).write_bytes(got.content)


def test_merge_stores_full_weights_once(
    client: TestClient, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    url = f"/v1/jobs/{trained.job_id}/artifacts/merge"
    before = client.get(
        f"/v1/jobs/{trained.job_id}/artifacts/merged/model.safetensors", headers=auth(trained.team)
    )
    assert before.status_code == 404 and "artifacts/merge" in before.json()["error"]["message"]

    made = client.post(url, headers=auth(trained.team))
    assert made.status_code == 200, made.text
    listed = {item["name"]: item for item in made.json()["data"]}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(listed)
    assert "adapter_model.safetensors" not in listed
    folder = tmp_path / "downloaded"
    _download(client, trained.team, list(listed.values()), folder)

    full = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert not any("lora" in key for key in full.state_dict()), "plain weights, no adapter"
    adapter = tmp_path / "adapter"
    listing = client.get(f"/v1/jobs/{trained.job_id}/artifacts", headers=auth(trained.team))
    _download(client, trained.team, listing.json()["data"], adapter)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    tuned = PeftModel.from_pretrained(base, adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    merged_logits, tuned_logits = _logits(full, tokenizer), _logits(tuned, tokenizer)
    assert torch.allclose(merged_logits, tuned_logits, atol=1e-4)
    with tuned.disable_adapter():
        plain = _logits(tuned, tokenizer)
    assert not torch.allclose(merged_logits, plain, atol=1e-4), "the adapter is in the weights"

    def no_second_merge(*args: object) -> None:
        raise AssertionError("merged again")

    monkeypatch.setattr(merge, "_build", no_second_merge)
    again = client.post(url, headers=auth(trained.team))
    assert again.status_code == 200
    assert again.json() == made.json(), "the stored copy"

    other = create_team(client, name="not-the-owner")
    assert client.post(url, headers=auth(other)).status_code == 404
