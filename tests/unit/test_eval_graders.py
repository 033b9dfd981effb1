"""Graders on the outputs models really give: wrapped letters, lower case, two letters, prose."""

from __future__ import annotations

import pytest

from ftq.shared.evals.graders import extract_choice, grade
from ftq.shared.evals.service import parse_record


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("The answer is (C).", "C"),
        ("c", "C"),
        ("Answer: B) because the second rule forbids it", "B"),
        ("(D)", "D"),
        ("**E**", "E"),
        ("B) because", "B"),
        ("C. Because Jones precedes Kim", "C"),
        ("The correct option is e.", "E"),
        ("answer: (a)", "A"),
        ("A", "A"),
        ("A good question. Final answer: D", "D"),
        ("It must be C.", "C"),
    ],
)
def test_choice_reads_the_letter_from_free_text(output: str, letter: str) -> None:
    assert extract_choice(output) == letter
    assert grade("choice", output, [letter]) == 1.0


@pytest.mark.parametrize(
    "output",
    [
        "The answer is A or C",
        "A or C",
        "I think B, but maybe D",
        "Answer: B ... so the answer is D",
        "None of these options",
        "A cat sat on the mat",
        "",
    ],
)
def test_two_letters_or_none_score_zero(output: str) -> None:
    assert extract_choice(output) is None
    assert grade("choice", output, ["A"]) == 0.0
    assert grade("choice", output, ["C"]) == 0.0


def test_choice_accepts_any_listed_reference_and_wrapped_references() -> None:
    assert grade("choice", "The answer is (B).", ["A", "B"]) == 1.0
    assert grade("choice", "b", ["(B)"]) == 1.0
    assert grade("choice", "The answer is (B).", ["C"]) == 0.0


def test_exact_ignores_whitespace_and_case_only() -> None:
    assert grade("exact", "  Paris\n", ["paris"]) == 1.0
    assert grade("exact", "The  capital is\tParis", ["the capital is paris"]) == 1.0
    assert grade("exact", "Paris.", ["Paris"]) == 0.0
    assert grade("exact", "Lyon", ["Paris", "lyon"]) == 1.0


def test_contains_finds_the_reference_inside_the_output() -> None:
    assert grade("contains", "So 5 km = 5000 m, as asked.", ["5 KM = 5000  m"]) == 1.0
    assert grade("contains", "5000 metres", ["5 km = 5000 m"]) == 0.0
    assert grade("contains", "anything", [""]) == 0.0


def test_bleu_and_rouge_l_are_in_zero_to_one_and_rank_closeness() -> None:
    reference = ["the cat sat on the mat"]
    for grader in ("bleu", "rouge_l"):
        same = grade(grader, "the cat sat on the mat", reference)
        close = grade(grader, "the cat is on the mat", reference)
        far = grade(grader, "dogs bark loudly", reference)
        assert same == 1.0
        assert 0.0 < close < 1.0
        assert far == 0.0
        assert grade(grader, "", reference) == 0.0


def test_records_give_prompt_and_reference() -> None:
    chat = (
        b'{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},'
        b' {"role": "assistant", "content": "a", "weight": 1}]}'
    )
    assert parse_record(chat) == (
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        ["a"],
    )
    evals = b'{"input": [{"role": "user", "content": "q"}], "ideal": ["B", "C"]}'
    assert parse_record(evals) == ([{"role": "user", "content": "q"}], ["B", "C"])
    assert parse_record(b'{"messages": [{"role": "user", "content": "q"}]}') is None
    assert parse_record(b"not json") is None
