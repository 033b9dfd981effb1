"""The report's quality section: duplicates, near duplicates, conflicts, balance, outliers,
empty answers, diversity and train/validation overlap, each with its lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from ftq.shared.datasets.validation import parallel, validate_file
from ftq.shared.datasets.validation.core import validate_pair
from ftq.shared.datasets.validation.quality import (
    BATCH,
    Kmv,
    QualityConfig,
    capped_words,
    lsh_bands,
    prompt_answer,
)
from ftq.shared.datasets.validation.report import Quality
from tests.unit._data import require_shared_data

WORDS = [
    "river",
    "stone",
    "lamp",
    "orbit",
    "velvet",
    "quarry",
    "meadow",
    "signal",
    "harbor",
    "cedar",
    "prism",
    "lantern",
    "falcon",
    "ember",
    "glacier",
    "copper",
    "willow",
    "thunder",
    "marble",
    "saffron",
    "basalt",
    "comet",
    "juniper",
    "tundra",
]


def sentence(rng: random.Random, n: int = 40) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def example(user: str, answer: str, system: str = "Answer briefly.") -> str:
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return json.dumps({"messages": messages})


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def varied(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [example(sentence(rng), sentence(rng, 30)) for _ in range(n)]


def quality_of(path: Path, **kwargs: object) -> Quality:
    report = validate_file(path, **kwargs)  # type: ignore[arg-type]
    assert report.quality is not None
    return report.quality


def test_clean_file_has_no_quality_warnings(tmp_path: Path) -> None:
    q = quality_of(write(tmp_path / "d.jsonl", varied(60)))
    assert q.n_examples == 60
    assert q.warnings == []
    assert q.exact_duplicates.count == q.near_duplicates.count == 0
    assert q.conflicting_answers.count == q.empty_answers.count == 0
    assert q.diversity.prompt_ngram_share is not None and q.diversity.prompt_ngram_share > 0.5
    assert q.overlap is None


def test_exact_duplicates_ignore_case_and_spaces_and_name_first_line(tmp_path: Path) -> None:
    lines = varied(30)
    lines.append(example("What is the CAPITAL of France?", "Paris"))
    lines.append(example("what is the capital   of france?", "paris"))
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.exact_duplicates.count == 1
    assert q.exact_duplicates.lines == [32]
    assert q.exact_duplicates.matches == [31]
    assert any(w.code == "quality_exact_duplicates" and "32" in w.message for w in q.warnings)


def test_near_duplicates_by_minhash(tmp_path: Path) -> None:
    rng = random.Random(5)
    lines = varied(30)
    base = sentence(rng, 120)
    answer = sentence(rng, 60)
    lines.append(example(base, answer))
    words = base.split()
    words[60] = "zeppelin"
    lines.append(example(" ".join(words), answer))
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.near_duplicates.lines == [32]
    assert q.near_duplicates.matches == [31]
    assert q.exact_duplicates.count == 0


def test_near_duplicates_of_long_prompts_are_found_across_sketch_batches(tmp_path: Path) -> None:
    rng = random.Random(9)
    lines = varied(BATCH + 100)
    base, answer = sentence(rng, 900), sentence(rng, 40)  # ~6 KB: only its ends are split
    words = base.split()
    words[-5] = "zeppelin"
    lines[4] = example(base, answer)
    lines[BATCH + 50] = example(" ".join(words), answer)
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.near_duplicates.lines == [BATCH + 51]
    assert q.near_duplicates.matches == [5]


def test_capped_words_are_the_ends_of_the_full_split() -> None:
    rng = random.Random(3)
    text = sentence(rng, 1000).encode()
    words = text.split()
    assert capped_words(text, 128) == words[:64] + words[-64:]
    assert capped_words(b"a  b\tc", 128) == [b"a", b"b", b"c"]
    assert capped_words(b"", 128) == []


def test_near_duplicate_threshold_is_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftq.shared.settings import get_settings

    monkeypatch.setenv("FTQ_QUALITY_NEAR_DUPLICATE_THRESHOLD", "0.5")
    get_settings.cache_clear()
    try:
        q = quality_of(write(tmp_path / "d.jsonl", varied(12)))
        assert q.near_duplicate_threshold == 0.5
    finally:
        monkeypatch.delenv("FTQ_QUALITY_NEAR_DUPLICATE_THRESHOLD")
        get_settings.cache_clear()


def test_conflicting_answers(tmp_path: Path) -> None:
    lines = varied(20)
    lines.append(example("Is 7 prime?", "Yes."))
    lines.append(example("Is 7 prime?", "No."))
    lines.append(example("Is 7 prime?", "Yes."))
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.conflicting_answers.lines == [22]
    assert q.conflicting_answers.matches == [21]
    # The third repeats the first exactly: a duplicate, not a conflict.
    assert q.exact_duplicates.lines == [23]


def test_empty_and_whitespace_answers(tmp_path: Path) -> None:
    lines = varied(20)
    lines[4] = example("Say something.", "   ")
    lines[9] = example("Say nothing.", "\n\t")
    lines[14] = example("Say it wide.", "\u3000\xa0")
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.empty_answers.lines == [5, 10, 15]
    assert any(w.code == "quality_empty_answers" for w in q.warnings)


def test_length_outliers_beyond_median_plus_k_mad(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = [example(sentence(rng, 30 + i % 5), sentence(rng, 10)) for i in range(40)]
    lines[17] = example(sentence(rng, 3000), "ok")
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    lo = q.length_outliers
    assert lo.lines == [18]
    assert lo.median_tokens is not None and lo.high is not None and lo.mad_tokens
    assert lo.high == lo.median_tokens + 6 * lo.mad_tokens


def test_answer_balance_flags_a_majority_class(tmp_path: Path) -> None:
    rng = random.Random(9)
    labels = ["positive"] * 90 + ["negative"] * 10
    lines = [example(sentence(rng), label) for label in labels]
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    ab = q.answer_balance
    assert ab.classification_like
    assert ab.counts == {"positive": 90, "negative": 10}
    assert ab.majority == "positive" and ab.majority_share == 0.9
    assert ab.imbalanced
    assert any(w.code == "quality_answer_imbalance" for w in q.warnings)


def test_free_text_answers_are_not_classification(tmp_path: Path) -> None:
    q = quality_of(write(tmp_path / "d.jsonl", varied(30)))
    assert not q.answer_balance.classification_like
    assert not q.answer_balance.imbalanced


def test_diversity_low_for_repetitive_prompts(tmp_path: Path) -> None:
    rng = random.Random(2)
    template = "Translate the following sentence into French please and be accurate:"
    lines = [example(f"{template} {rng.choice(WORDS)}", sentence(rng, 20)) for _ in range(50)]
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    assert q.diversity.prompt_ngram_share is not None
    assert q.diversity.prompt_ngram_share < 0.2
    assert q.diversity.answer_ngram_share is not None and q.diversity.answer_ngram_share > 0.5


def test_lines_are_capped_with_a_count(tmp_path: Path) -> None:
    lines = [example("Same question?", "Same answer.")] * 60
    q = quality_of(write(tmp_path / "d.jsonl", lines))
    dup = q.exact_duplicates
    assert dup.count == 59
    assert dup.lines == list(range(2, 22))
    assert dup.matches == [1] * 20
    assert dup.truncated
    assert "and 39 more" in next(w.message for w in q.warnings if "duplicates" in w.code)


def test_quality_is_the_same_across_ranges_and_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = varied(300)
    lines[250] = lines[10]
    lines[280] = example("Is 7 prime?", "Yes.")
    lines[290] = example("Is 7 prime?", "No.")
    path = write(tmp_path / "d.jsonl", lines)
    one = quality_of(path, workers=1)
    monkeypatch.setattr(parallel, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(parallel, "MIN_RANGE", 4096)
    many = quality_of(path, workers=2)
    assert one.exact_duplicates.lines == [251]
    assert one.exact_duplicates.matches == [11]
    assert one.conflicting_answers.lines == [291]
    assert many.model_dump() == one.model_dump()


def test_quality_can_be_turned_off(tmp_path: Path) -> None:
    report = validate_file(write(tmp_path / "d.jsonl", varied(12)), quality=False)
    assert report.quality is None


def test_quality_never_changes_validity(tmp_path: Path) -> None:
    lines = [example("Same question?", "Same answer.")] * 20
    report = validate_file(write(tmp_path / "d.jsonl", lines))
    assert report.ok
    assert report.quality is not None and report.quality.exact_duplicates.count == 19


def test_overlap_exact_and_near_by_validation_line(tmp_path: Path) -> None:
    rng = random.Random(11)
    train_lines = varied(40, seed=4)
    long_user, long_answer = sentence(rng, 120), sentence(rng, 60)
    train_lines.append(example(long_user, long_answer))
    words = long_user.split()
    words[30] = "zeppelin"
    valid_lines = varied(15, seed=8)
    valid_lines.insert(3, train_lines[7])
    valid_lines.insert(9, example(" ".join(words), long_answer))
    train = write(tmp_path / "train.jsonl", train_lines)
    valid = write(tmp_path / "valid.jsonl", valid_lines)
    train_report, valid_report = validate_pair(train, valid)
    assert valid_report.n_examples == 17
    assert train_report.quality is not None
    ov = train_report.quality.overlap
    assert ov is not None and ov.leaked
    assert ov.n_validation_examples == 17
    assert ov.exact.lines == [4] and ov.exact.matches == [8]
    assert ov.near.lines == [10] and ov.near.matches == [41]
    assert any(w.code == "quality_validation_overlap" for w in train_report.quality.warnings)


def test_no_overlap_between_distinct_files(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", varied(20, seed=1))
    valid = write(tmp_path / "valid.jsonl", varied(12, seed=2))
    train_report, _ = validate_pair(train, valid)
    assert train_report.quality is not None and train_report.quality.overlap is not None
    assert not train_report.quality.overlap.leaked


def test_prompt_answer_per_format() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
            {"role": "assistant", "content": [{"type": "text", "text": "see you"}]},
        ]
    }
    prompt, answer = prompt_answer(chat, "chat")
    assert answer == "see you" and prompt.endswith("user: bye")
    assert prompt_answer({"prompt": "p", "completion": "c"}, "completion") == ("p", "c")
    pref = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    assert prompt_answer(pref, "preference") == ("user: q", "good")
    assert prompt_answer({"input": [{"role": "user", "content": "q"}], "ideal": "A"}, "evals") == (
        "user: q",
        "A",
    )
    assert prompt_answer({"messages": [{"role": "user", "content": "q"}]}, "chat")[1] is None


def test_lsh_bands_match_datasketch_choice() -> None:
    # datasketch's _optimal_param(0.8, 64, 0.5, 0.5) is (5, 11).
    assert lsh_bands(0.8, 64) == (5, 11)
    b, r = lsh_bands(0.5, 128)
    assert b * r <= 128


def test_kmv_estimates_distinct_and_merges() -> None:
    a, b = Kmv(), Kmv()
    rng = random.Random(0)
    values = np.array([rng.getrandbits(64) for _ in range(20_000)], dtype=np.uint64)
    a.add_array(values[:12_000])
    b.add_array(values[8_000:])
    a.merge(b)
    assert a.total == 24_000
    assert abs(a.distinct() - 20_000) / 20_000 < 0.06


def test_settings_defaults() -> None:
    config = QualityConfig.from_settings()
    assert config.near_duplicate_threshold == 0.8
    assert config.listed_lines == 20


def test_real_evals_answers_are_balanced_classes() -> None:
    data = require_shared_data()
    q = quality_of(data / "ar_lsat.jsonl", purpose="eval")
    ab = q.answer_balance
    assert ab.classification_like and ab.n_labels == 5
    assert set(ab.counts) == {"a", "b", "c", "d", "e"}
    assert ab.majority_share is not None and ab.majority_share < 0.3
    assert not ab.imbalanced


def test_real_logiqa_exact_duplicates_are_real(tmp_path: Path) -> None:
    data = require_shared_data()
    path = data / "logiqa.jsonl"
    q = quality_of(path, purpose="eval")
    assert q.exact_duplicates.count > 0
    rows = path.read_text(encoding="utf-8").splitlines()
    for line, first in zip(q.exact_duplicates.lines, q.exact_duplicates.matches, strict=True):
        a, b = json.loads(rows[line - 1]), json.loads(rows[first - 1])
        assert a["ideal"].strip().lower() == b["ideal"].strip().lower()
        assert a["input"][-1]["content"].split() == b["input"][-1]["content"].split() or (
            a["input"][-1]["content"].lower().split() == b["input"][-1]["content"].lower().split()
        )


def test_real_split_overlap(tmp_path: Path) -> None:
    data = require_shared_data()
    rows = (data / "gsm8k_chat_train.jsonl").read_text(encoding="utf-8").splitlines()
    train = write(tmp_path / "train.jsonl", rows[:400])
    valid = write(tmp_path / "valid.jsonl", rows[380:])
    train_report, _ = validate_pair(train, valid)
    assert train_report.quality is not None and train_report.quality.overlap is not None
    ov = train_report.quality.overlap
    assert ov.exact.count == 20
    assert ov.exact.lines[:3] == [1, 2, 3] and ov.exact.matches[:3] == [381, 382, 383]


def test_kmv_counts_distinct_values_in_a_batch_full_of_repeats() -> None:
    rng = random.Random(1)
    few = np.array([rng.getrandbits(64) for _ in range(3_000)] * 10, dtype=np.uint64)
    sketch = Kmv()
    sketch.add_array(few)
    assert sketch.distinct() == 3_000 and sketch.total == 30_000
    many = np.array([rng.getrandbits(64) for _ in range(10_000)] * 5, dtype=np.uint64)
    rng.shuffle(many)
    sketch = Kmv()
    sketch.add_array(many)
    assert abs(sketch.distinct() - 10_000) / 10_000 < 0.06
