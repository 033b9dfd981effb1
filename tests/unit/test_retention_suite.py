"""The shipped retention suite loads offline, every item is gradable, and samples are seeded."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest

from ftq.shared.evals import retention
from ftq.shared.evals.graders import extract_choice, grade
from ftq.shared.evals.service import parse_record


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket opened while loading fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the retention suite reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    retention.load_suite.cache_clear()


def test_the_suite_loads_offline_with_its_source_and_licence(offline: None) -> None:
    suite = retention.load_suite()
    header = json.loads(retention.SUITE_PATH.read_bytes().splitlines()[0])["suite"]
    assert len(suite.records) == header["items"] == 298
    assert suite.grader == "choice"
    assert suite.info() == {
        "name": "ftq-general-v1",
        "source": header["source"],
        "package": "lm-eval 0.4.13",
        "licence": "MIT",
    }
    assert "MMLU" in suite.source and "BIG-Bench Hard" in suite.source
    sources = Counter(json.loads(r)["source"].split("/")[0] for r in suite.records)
    assert sources == {"mmlu": 270, "bbh": 28}


def test_every_item_parses_to_one_prompt_and_a_letter_among_its_options() -> None:
    prompts = set()
    for raw in retention.load_suite().records:
        parsed = parse_record(raw)
        assert parsed is not None, raw
        messages, references = parsed
        assert [m["role"] for m in messages] == ["user"]
        prompt = messages[0]["content"]
        (answer,) = references
        assert f"\n({answer}) " in prompt, "the answer is one of the listed options"
        assert grade("choice", f"The answer is ({answer}).", references) == 1.0
        assert extract_choice(prompt.splitlines()[-1]) is None, "the prompt gives no letter away"
        prompts.add(prompt)
    assert len(prompts) == len(retention.load_suite().records), "no item twice"


def test_a_sample_is_the_same_on_every_load_and_changes_with_the_seed() -> None:
    records = retention.load_suite().records
    first = retention.sample(records, 40)
    retention.load_suite.cache_clear()
    again = retention.sample(retention.load_suite().records, 40)
    assert first == again and len(first) == 40 and len(set(first)) == 40
    assert retention.sample(records, 40, seed=retention.SEED) == first
    assert retention.sample(records, 40, seed=7) != first
    assert retention.sample(records, None) == list(records)
    assert retention.sample(records, 10_000) == list(records)


def test_result_pairs_items_and_warns_only_past_the_threshold() -> None:
    pending = retention.queued("ev_1", {"name": "s", "source": "x", "licence": "MIT"})
    base = {i: 1.0 if i % 2 == 0 else 0.0 for i in range(40)}  # 0.5
    kept = dict(base)
    kept[1] = 1.0  # one item gained: +0.025
    found = retention.result(pending, base, kept, warn_drop=0.05)
    assert (found["base_score"], found["tuned_score"], found["delta"]) == (0.5, 0.525, 0.025)
    assert found["items"] == 40 and found["warning"] is None and found["status"] == "completed"
    low, high = found["interval"]
    assert low <= 0.025 <= high

    lost = {i: 0.0 for i in range(40)}
    lost[39] = 1.0  # tuned keeps 1 of 40 right; the base had 20 of 40
    dropped = retention.result(pending, base, lost, warn_drop=0.05)
    assert dropped["delta"] == pytest.approx(-0.475)
    assert dropped["interval"][1] < 0
    assert dropped["warning"].startswith("the tuned model lost 0.475 on general skills")
    assert "excludes no change" in dropped["warning"]
    assert dropped["suite"] == pending["suite"] and dropped["eval_id"] == "ev_1"

    tolerant = retention.result(pending, base, lost, warn_drop=0.5)
    assert tolerant["warning"] is None


def test_items_one_model_did_not_answer_are_left_out_of_both_scores() -> None:
    pending = retention.queued("ev_2", {"name": "s", "source": "x", "licence": None})
    base = {0: 1.0, 1: 1.0, 2: 0.0}
    tuned = {0: 1.0, 2: 0.0}  # item 1 was a provider error for the tuned model
    found = retention.result(pending, base, tuned, warn_drop=0.05)
    assert (found["items"], found["base_score"], found["tuned_score"]) == (2, 0.5, 0.5)
    assert found["delta"] == 0.0 and found["warning"] is None
