"""Token counting the way OpenAI's chat-format counting works.

Per message: 3 tokens + the role + the content + (the name + 1 when a name is given); per example
3 more that prime the reply. Tool definitions follow the cookbook's `num_tokens_for_tools`
(o200k_base models: 7 per function, cl100k_base: 10; 3 per properties block and per property, 3
per enum item less 3 per enum, 12 at the end). Tool calls and legacy function calls count 3 + the
function name + the arguments: OpenAI does not publish their rendering, so that part is close, not
exact. Special-token text (`<|endoftext|>`) counts as ordinary text, as the training pipeline
treats user data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import orjson

from ftq.shared.datasets.tokens import get_encoding

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOKENS_PER_CALL = 3
_FUNC_INIT = {"o200k_base": 7, "cl100k_base": 10}
_PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 3, 3, -3, 3, 12
_CACHE_CHARS = 8_000_000


@cache
def counter_for(encoding: str) -> TokenCounter:
    """One counter per encoding and process, so its caches outlive a range."""
    return TokenCounter(encoding)


class TokenCounter:
    """Counts tokens of one encoding; repeated strings (system prompts, tool lists) are cached."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.encode = _encoder(encoding)
        self.func_init = _FUNC_INIT.get(encoding, 7)
        self._cache: dict[str, int] = {}
        self._cached_chars = 0
        self.role = {r: self.text(r) for r in ("system", "user", "assistant", "tool", "function")}

    def text(self, text: str) -> int:
        """Tokens in `text`."""
        return len(self.encode(text))

    def cached(self, text: str) -> int:
        """Tokens in `text`, remembered: for strings that repeat across examples."""
        n = self._cache.get(text)
        if n is None:
            if self._cached_chars > _CACHE_CHARS:
                self._cache.clear()
                self._cached_chars = 0
            n = self._cache[text] = len(self.encode(text))
            self._cached_chars += len(text)
        return n

    def definitions(self, functions: list[dict[str, Any]]) -> int:
        """Tokens of function definitions (`tools[i].function` or legacy `functions[i]`)."""
        if not functions:
            return 0
        return sum(map(self._function, functions)) + _FUNC_END

    def _function(self, function: dict[str, Any]) -> int:
        """One function definition: name and description, then each property."""
        description = _text(function.get("description")).removesuffix(".")
        n = self.func_init + self.text(f"{_text(function.get('name'))}:{description}")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and properties:
            n += _PROP_INIT + sum(self._property(k, v) for k, v in properties.items())
        return n

    def _property(self, key: str, spec: Any) -> int:
        """One parameter property: key, type, description and enum values."""
        spec = spec if isinstance(spec, dict) else {}
        n = _PROP_KEY
        enum = spec.get("enum")
        if isinstance(enum, list):
            n += _ENUM_INIT + sum(_ENUM_ITEM + self.text(_text(item)) for item in enum)
        description = _text(spec.get("description")).removesuffix(".")
        return n + self.text(f"{key}:{_text(spec.get('type'))}:{description}")


def _encoder(encoding: str) -> Callable[[str], list[int]]:
    """tiktoken's core `encode_ordinary`, without the Python wrapper that costs a frame a call."""
    # The wrapper only repairs lone surrogates, which orjson never produces: it rejects them.
    core: Callable[[str], list[int]] = get_encoding(encoding)._core_bpe.encode_ordinary
    return core


def _text(value: Any) -> str:
    """A schema value as text: strings as they are, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
