"""Dataset quality: duplicates, near duplicates, conflicts, balance, outliers, diversity, leaks.

Fed example by example from the validator's single pass (each worker wraps its checkers), a
`QualityPart` keeps only hashes, MinHash signatures and counters for its byte range, never texts.
The parent folds the parts into a `QualityIndex`: a few int64 hashes per example in memory and
the signatures in a temporary file, the checks sorts over whole arrays. Near duplicates are MinHash
LSH: signatures from `rensa` (a maintained Rust MinHash), bands picked for the threshold the way
datasketch does, candidates verified on their signatures.

Examples are sketched in batches: rensa hashes the words of a batch in one call, numpy turns
word hashes into n-gram hashes, and rensa's digest matrix signs the whole batch at once, so the
per-example Python work is parsing out the prompt and answer and a few exact hashes.
"""

from __future__ import annotations

import hashlib
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rensa import RMinHash

from ftq.shared.datasets.validation.chat import Counted
from ftq.shared.datasets.validation.context import Checks
from ftq.shared.datasets.validation.lines import (
    Checker,
    RangeConfig,
    RangeResult,
    RangeValidator,
    detect_format,
)
from ftq.shared.datasets.validation.reader import ByteRange, iter_lines
from ftq.shared.datasets.validation.report import (
    AnswerBalance,
    Diversity,
    Finding,
    LengthOutliers,
    Overlap,
    Quality,
    QualityCheck,
)

KMV_SIZE = 4096
SEED = 7
BATCH = 512  # examples sketched per batch
_U64 = 1 << 64
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
U64s = NDArray[np.uint64]


@dataclass(frozen=True)
class QualityConfig:
    """The thresholds one pass needs (plain data, so it pickles into worker processes)."""

    near_duplicate_threshold: float = 0.8
    num_perm: int = 64
    ngram: int = 3
    max_words: int = 48
    length_mad_k: float = 6.0
    balance_max_labels: int = 20
    balance_label_max_chars: int = 40
    balance_majority_share: float = 0.8
    listed_lines: int = 20

    @classmethod
    def from_settings(cls) -> QualityConfig:
        """The thresholds in `FTQ_QUALITY_*` settings."""
        from ftq.shared.settings import get_settings

        s = get_settings()
        return cls(
            near_duplicate_threshold=s.quality_near_duplicate_threshold,
            num_perm=s.quality_num_perm,
            ngram=s.quality_ngram,
            max_words=s.quality_max_words,
            length_mad_k=s.quality_length_mad_k,
            balance_max_labels=s.quality_balance_max_labels,
            balance_label_max_chars=s.quality_balance_label_max_chars,
            balance_majority_share=s.quality_balance_majority_share,
            listed_lines=s.quality_listed_lines,
        )


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows per band minimising false positives plus false negatives (datasketch's)."""

    def area(b: int, r: int, lo: float, hi: float, candidate: bool, steps: int = 200) -> float:
        width = (hi - lo) / steps
        total = 0.0
        for i in range(steps):
            p = 1 - (1 - (lo + (i + 0.5) * width) ** r) ** b
            total += p if candidate else 1 - p
        return total * width

    best, best_error = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = area(b, r, 0.0, threshold, True)
            fn = area(b, r, threshold, 1.0, False)
            if 0.5 * fp + 0.5 * fn < best_error:
                best, best_error = (b, r), 0.5 * fp + 0.5 * fn
    return best


def _h63(data: bytes) -> int:
    """A 63-bit digest, equal in every process (SQLite integers are signed)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed."""
    return " ".join(text.lower().split())


def _text(content: Any) -> str:
    """The text of a content string or content-part list."""
    if type(content) is str:
        return content
    if type(content) is list:
        return " ".join(
            p["text"] for p in content if type(p) is dict and type(p.get("text")) is str
        )
    return ""


def _turns_text(messages: Any) -> str:
    """`role: text` of each message, one per line."""
    if type(messages) is str:
        return messages
    if type(messages) is not list:
        return ""
    return "\n".join(
        f"{m.get('role')}: {_text(m.get('content'))}" for m in messages if type(m) is dict
    )


def prompt_answer(obj: dict[str, Any], fmt: str) -> tuple[str, str | None]:
    """The prompt and the final answer of one example (answer None when there is none)."""
    if fmt == "chat":
        messages = obj.get("messages")
        if type(messages) is not list:
            return "", None
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            if type(m) is dict and m.get("role") == "assistant":
                if m.get("tool_calls") or m.get("function_call"):
                    call = m.get("tool_calls") or m.get("function_call")
                    answer = repr(call)
                else:
                    answer = _text(m.get("content"))
                return _turns_text(messages[:i]), answer
        return _turns_text(messages), None
    if fmt == "preference":
        source = obj.get("input")
        prompt = _turns_text(source.get("messages") if type(source) is dict else None)
        preferred = obj.get("preferred_output")
        if type(preferred) is list and preferred and type(preferred[-1]) is dict:
            return prompt, _text(preferred[-1].get("content"))
        return prompt, None
    if fmt == "completion":
        text, completion = obj.get("prompt"), obj.get("completion")
        return (text if type(text) is str else ""), (
            completion if type(completion) is str else None
        )
    if fmt == "evals":
        ideal = obj.get("ideal")
        if type(ideal) is str:
            return _turns_text(obj.get("input")), ideal
        if type(ideal) is list and ideal:
            return _turns_text(obj.get("input")), " | ".join(map(str, ideal))
        return _turns_text(obj.get("input")), None
    return "", None


def _fmix(x: U64s) -> U64s:
    """MurmurHash3's 64-bit finaliser: spreads every input bit over the output (wraps mod 2^64)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _smallest_distinct(hashes: U64s, k: int) -> U64s:
    """The `k` smallest distinct values, without sorting them all when repeats are few.

    The 2k smallest values (repeats counted) hold every value below their largest; when more
    than k of them are distinct, the k smallest distinct values are among them.
    """
    head = np.unique(np.partition(hashes, 2 * k)[: 2 * k])
    return head[:k] if len(head) > k else np.unique(hashes)[:k]


class Kmv:
    """K minimum values of 64-bit hashes: a mergeable estimate of how many are distinct."""

    __slots__ = ("kept", "total")

    def __init__(self) -> None:
        self.kept: U64s = np.empty(0, dtype=np.uint64)  # sorted, distinct, at most KMV_SIZE
        self.total = 0

    def add_array(self, hashes: U64s, count: int | None = None) -> None:
        """Count these hashes (`count` of them when they are already a sketch)."""
        self.total += len(hashes) if count is None else count
        if len(self.kept) >= KMV_SIZE:
            hashes = hashes[hashes < self.kept[-1]]
        if not len(hashes):
            return
        distinct = (
            _smallest_distinct(hashes, KMV_SIZE)
            if len(hashes) > 2 * KMV_SIZE
            else np.unique(hashes)
        )
        # A range's first batch: already sorted and distinct, no union to sort again.
        kept = np.union1d(self.kept, distinct) if len(self.kept) else distinct
        self.kept = kept[:KMV_SIZE]

    def merge(self, other: Kmv) -> None:
        """Fold another sketch in."""
        self.add_array(other.kept, other.total)

    def distinct(self) -> float:
        """The estimated number of distinct hashes."""
        if len(self.kept) < KMV_SIZE:
            return float(len(self.kept))
        return (KMV_SIZE - 1) * _U64 / (float(self.kept[-1]) + 1)

    def share(self) -> float | None:
        """Distinct n-grams over all n-grams."""
        return round(min(1.0, self.distinct() / self.total), 4) if self.total else None


@dataclass
class Capped:
    """The first few lines of a finding, and how many there are."""

    lines: list[int] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, cap: int) -> None:
        self.count += 1
        if len(self.lines) < cap:
            self.lines.append(line)

    def merge(self, other: Capped, offset: int, cap: int) -> None:
        self.count += other.count
        room = cap - len(self.lines)
        self.lines.extend(line + offset for line in other.lines[: max(0, room)])


@dataclass
class QualityPart:
    """What one byte range contributes: hashes, signatures and counters (lines range-relative)."""

    lines: array[int] = field(default_factory=lambda: array("q"))
    exact: array[int] = field(default_factory=lambda: array("q"))
    prompts: array[int] = field(default_factory=lambda: array("q"))
    answers: array[int] = field(default_factory=lambda: array("q"))
    tokens: array[int] = field(default_factory=lambda: array("q"))
    bands: array[int] = field(default_factory=lambda: array("q"))
    signatures: array[int] = field(default_factory=lambda: array("I"))
    empty: Capped = field(default_factory=Capped)
    labels: dict[str, int] = field(default_factory=dict)
    n_long_answers: int = 0
    prompt_ngrams: Kmv = field(default_factory=Kmv)
    answer_ngrams: Kmv = field(default_factory=Kmv)


class QualityPass:
    """Feeds examples of one range into a `QualityPart` (call `finish` before reading it)."""

    def __init__(self, config: QualityConfig, fmt: str | None) -> None:
        self.config = config
        self.fmt = fmt
        self.part = QualityPart()
        self.bands, self.rows = lsh_bands(config.near_duplicate_threshold, config.num_perm)
        self._texts: list[bytes] = []  # normalised prompt, answer, prompt, answer, ...
        self._words: list[list[bytes]] = []  # their capped words, in the same order

    @property
    def count(self) -> int:
        """Examples taken in so far."""
        return len(self.part.lines)

    def example(self, obj: dict[str, Any], fmt: str, line: int, tokens: int | None) -> None:
        """Take one parsed example in (its total tokens when it could be counted)."""
        prompt, answer = prompt_answer(obj, fmt)
        if answer is None:
            return
        c, p = self.config, self.part
        lower_prompt, lower_answer = prompt.lower().encode(), answer.lower().encode()
        bare_answer = lower_answer.translate(None, _WHITESPACE)
        if not bare_answer or (not answer.isascii() and not answer.split()):
            p.empty.add(line, c.listed_lines)
        p.lines.append(line)
        p.tokens.append(-1 if tokens is None else tokens)
        if len(p.labels) <= c.balance_max_labels:
            if bare_answer and len(lower_answer) <= 4 * c.balance_label_max_chars:
                label = " ".join(answer.lower().split())
                if len(label) <= c.balance_label_max_chars:
                    p.labels[label] = p.labels.get(label, 0) + 1
                else:
                    p.n_long_answers += 1
            else:
                p.n_long_answers += 1
        self._texts += (lower_prompt.translate(None, _WHITESPACE), bare_answer)
        self._words += (
            capped_words(lower_prompt, c.max_words),
            capped_words(lower_answer, c.max_words),
        )
        if len(self._texts) >= 2 * BATCH:
            self._sketch()

    def finish(self) -> QualityPart:
        """The part, with every example taken in sketched."""
        if self._texts:
            self._sketch()
        return self.part

    def _sketch(self) -> None:
        """Hash, sign and band the pending examples and count their n-grams."""
        texts, segments = self._texts, self._words
        self._texts, self._words = [], []
        self._exact(texts)
        grams, owner = _ngram_hashes(segments, self.config.ngram)
        per_segment = np.bincount(owner, minlength=len(segments))
        per_example = per_segment[0::2] + per_segment[1::2]
        offsets = np.concatenate(([0], np.cumsum(per_example))).astype(np.uint64)
        is_answer = (owner & 1).astype(bool)
        self.part.prompt_ngrams.add_array(grams[~is_answer])
        self.part.answer_ngrams.add_array(grams[is_answer])
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            grams, offsets, self.config.num_perm, SEED
        )
        signatures = np.array(matrix.to_rows(), dtype=np.uint32)
        self.part.signatures.frombytes(signatures.tobytes())
        self.part.bands.frombytes(_band_keys(signatures, self.bands, self.rows).tobytes())

    def _exact(self, texts: list[bytes]) -> None:
        """63-bit hashes of each prompt (0 when empty), answer, and the pair (texts lower-cased,
        whitespace removed: equal up to case and spaces)."""
        (hashed,) = RMinHash.hash_token_sets([texts])
        both = np.array(hashed, dtype=np.uint64)
        prompts, answers = both[0::2], both[1::2]
        exact = _fmix(prompts * np.uint64(_MIX[0]) + answers) >> np.uint64(1)
        empty = np.fromiter(map(len, texts[0::2]), dtype=np.int64, count=len(prompts)) == 0
        prompt_keys = np.where(empty, np.uint64(0), prompts >> np.uint64(1))
        self.part.exact.frombytes(exact.astype(np.int64).tobytes())
        self.part.prompts.frombytes(prompt_keys.astype(np.int64).tobytes())
        self.part.answers.frombytes((answers >> np.uint64(1)).astype(np.int64).tobytes())


# ASCII whitespace as str.split() knows it: ignored by the exact hashes, split on for words.
_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
CHARS_PER_WORD = 12  # how far into a long text its first (or last) capped words are looked for


def capped_words(text: bytes, cap: int) -> list[bytes]:
    """The first and last `cap / 2` words of a text (all of them if fewer).

    Long prompts often share a preamble and differ at the end (the question), so both ends
    count; the cap bounds the cost of very long examples. Only the ends of a long text are split.
    """
    head_n, tail_n = cap // 2, cap - cap // 2
    reach = CHARS_PER_WORD * head_n
    if len(text) <= 2 * reach:
        words = text.split()
        return words if len(words) <= cap else words[:head_n] + words[-tail_n:]
    head = text[:reach].split()[:-1]  # the last piece may be a cut word
    tail = text[-reach:].split()[1:]
    return head[:head_n] + tail[-tail_n:]


def _ngram_hashes(segments: list[list[bytes]], n: int) -> tuple[U64s, NDArray[np.int64]]:
    """Hashes of each segment's word n-grams (one gram of all its words when it has fewer than
    n, none when it is empty), grouped by segment in order, and the segment each belongs to."""
    hashed = RMinHash.hash_token_sets(segments)
    lengths = np.fromiter(map(len, hashed), dtype=np.int64, count=len(hashed))
    words = np.fromiter(chain.from_iterable(hashed), dtype=np.uint64, count=int(lengths.sum()))
    ends = np.cumsum(lengths)
    owner_of_word = np.repeat(np.arange(len(segments)), lengths)
    weights = [np.uint64(_MIX[k % 3] + 2 * k) for k in range(n)]
    # Full grams: n consecutive words of one segment (contiguous slices, no gathering).
    m = max(0, len(words) - n + 1)
    window = words[:m] * weights[0]
    for k in range(1, n):
        window = window + words[k : m + k] * weights[k]
    inside = np.flatnonzero(np.arange(m) + (n - 1) < ends[owner_of_word[:m]])
    full, full_owner = window[inside], owner_of_word[inside]
    # Short segments: one gram of their words.
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    first = ends[short] - lengths[short]
    gram = words[first] * weights[0]
    for k in range(1, n):
        has = lengths[short] > k
        gram = gram + np.where(has, words[np.where(has, first + k, first)], 0) * weights[k]
    at = np.searchsorted(full_owner, short)
    grams = np.insert(full, at, gram)
    return _fmix(grams), np.insert(full_owner, at, short)


def _band_keys(signatures: NDArray[np.uint32], bands: int, rows: int) -> NDArray[np.int64]:
    """One 63-bit key per (example, band): equal keys mean equal rows in that band."""
    n = len(signatures)
    cells = signatures[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    keys = np.broadcast_to(np.arange(bands, dtype=np.uint64), (n, bands)).copy()
    for r in range(rows):
        keys = _fmix(keys * np.uint64(_MIX[0]) ^ cells[:, :, r])
    return (keys >> np.uint64(1)).astype(np.int64).reshape(-1)


_COLUMNS = ("line", "exact", "prompt", "answer", "tokens")
I64s = NDArray[np.int64]


def _ints(values: array[int]) -> I64s:
    """An int64 copy of a part's array (empty arrays included)."""
    return np.array(values, dtype=np.int64)


def _repeats(keys: I64s) -> tuple[I64s, I64s]:
    """Each row whose key an earlier row has, and that earlier row's index (the first with the
    key), ordered by row."""
    order = np.argsort(keys, kind="stable")  # equal keys keep their row order
    ordered = keys[order]
    starts = np.ones(len(ordered), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    first = order[np.maximum.accumulate(np.where(starts, np.arange(len(ordered)), 0))]
    rows, firsts = order[~starts], first[~starts]
    by_row = np.argsort(rows, kind="stable")
    return rows[by_row], firsts[by_row]


@dataclass
class _Table:
    """A whole file's rows as arrays, ordered by line; `sig_row` points into the signatures."""

    columns: dict[str, I64s]
    bands: I64s  # (rows, bands)
    sig_row: I64s

    def __getitem__(self, name: str) -> I64s:
        return self.columns[name]

    def __len__(self) -> int:
        return len(self.columns["line"])


class QualityIndex:
    """A whole file's quality rows, and the checks over them.

    Per example it keeps about 90 bytes of hashes in memory (4.5 MB for the 200 MB bench file)
    and its MinHash signature in a temporary file; the checks are sorts over whole arrays.
    """

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.bands, self.rows = lsh_bands(config.near_duplicate_threshold, config.num_perm)
        self._parts: dict[str, list[I64s]] = {name: [] for name in (*_COLUMNS, "bands")}
        self._signatures = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())
        self._table: _Table | None = None
        self._view: NDArray[np.uint32] | None = None
        self.n = 0
        self.empty = Capped()
        self.labels: dict[str, int] = {}
        self.n_long_answers = 0
        self.prompt_ngrams, self.answer_ngrams = Kmv(), Kmv()

    def add(self, part: QualityPart, offset: int) -> None:
        """Fold one range's part in; its lines follow the `offset` lines merged so far."""
        arrays = (part.lines, part.exact, part.prompts, part.answers, part.tokens)
        for name, values in zip(_COLUMNS, arrays, strict=True):
            self._parts[name].append(_ints(values))
        self._parts["line"][-1] += offset
        self._parts["bands"].append(_ints(part.bands))
        self._signatures.write(part.signatures.tobytes())
        self._table = None
        self.n += len(part.lines)
        self.empty.merge(part.empty, offset, self.config.listed_lines)
        for label, count in part.labels.items():
            self.labels[label] = self.labels.get(label, 0) + count
        self.n_long_answers += part.n_long_answers
        self.prompt_ngrams.merge(part.prompt_ngrams)
        self.answer_ngrams.merge(part.answer_ngrams)

    def _rows(self) -> _Table:
        """The parts joined into one table ordered by line (built once after the last add)."""
        if self._table is None:
            columns = {
                name: np.concatenate([np.empty(0, np.int64), *self._parts[name]])
                for name in _COLUMNS
            }
            bands = np.concatenate([np.empty(0, np.int64), *self._parts["bands"]])
            order = np.argsort(columns["line"], kind="stable")
            self._table = _Table(
                columns={name: values[order] for name, values in columns.items()},
                bands=bands.reshape(-1, self.bands)[order],
                sig_row=order,
            )
        return self._table

    def _signature_rows(self) -> NDArray[np.uint32]:
        """Every example's signature, in the order the parts came (a view of the file, mapped
        once after the last add)."""
        if self._view is None or len(self._view) != self.n:
            self._signatures.flush()
            shape = (self.n, self.config.num_perm)
            self._view = (
                np.memmap(self._signatures, dtype=np.uint32, mode="r", shape=shape)
                if self.n
                else np.empty(shape, dtype=np.uint32)
            )
        return self._view

    def _pairs(self, rows: Iterator[tuple[int, int]]) -> QualityCheck:
        """A check from (line, earlier line) pairs, the first few listed."""
        check, cap = QualityCheck(), self.config.listed_lines
        for line, first in rows:
            check.count += 1
            if len(check.lines) < cap:
                check.lines.append(int(line))
                check.matches.append(int(first))
        check.truncated = check.count > len(check.lines)
        return check

    def _line_pairs(self, rows: I64s, firsts: I64s) -> QualityCheck:
        line = self._rows()["line"]
        return self._pairs(zip(line[rows].tolist(), line[firsts].tolist(), strict=True))

    def exact_duplicates(self) -> QualityCheck:
        """Examples whose prompt and answer repeat an earlier example's."""
        return self._line_pairs(*_repeats(self._rows()["exact"]))

    def conflicting_answers(self) -> QualityCheck:
        """Examples whose prompt repeats an earlier example's with another answer."""
        t = self._rows()
        prompted = np.flatnonzero(t["prompt"] != 0)
        rows, firsts = _repeats(t["prompt"][prompted])
        rows, firsts = prompted[rows], prompted[firsts]
        differ = t["answer"][rows] != t["answer"][firsts]
        return self._line_pairs(rows[differ], firsts[differ])

    def near_duplicates(self) -> QualityCheck:
        """Examples sharing an LSH band with an earlier one, not exact repeats of it, whose
        signatures agree on at least the threshold's share (checked against the earliest)."""
        t = self._rows()
        cells, firsts = _repeats(t.bands.reshape(-1))
        rows, firsts = cells // self.bands, firsts // self.bands
        by_pair = np.lexsort((firsts, rows))
        rows, firsts = rows[by_pair], firsts[by_pair]
        earliest = np.ones(len(rows), dtype=bool)
        earliest[1:] = rows[1:] != rows[:-1]
        rows, firsts = rows[earliest], firsts[earliest]
        keep = (t["exact"][rows] != t["exact"][firsts]) & (
            self._similarity(self, rows, self, firsts) >= self.config.near_duplicate_threshold
        )
        return self._line_pairs(rows[keep], firsts[keep])

    @staticmethod
    def _similarity(a: QualityIndex, rows: I64s, b: QualityIndex, others: I64s) -> NDArray[Any]:
        """The Jaccard estimates of pairs of rows (of `a` and `b`): shares of equal minimums."""
        if not len(rows):
            return np.empty(0)
        left = a._signature_rows()[a._rows().sig_row[rows]]
        right = b._signature_rows()[b._rows().sig_row[others]]
        return np.asarray((left == right).mean(axis=1))

    def length_outliers(self) -> LengthOutliers:
        """Examples whose token count lies over k median absolute deviations from the median."""
        t = self._rows()
        counted = np.flatnonzero(t["tokens"] >= 0)
        values, n = np.unique(t["tokens"][counted], return_counts=True)
        counts = dict(zip(values.tolist(), n.tolist(), strict=True))
        result = LengthOutliers(k=self.config.length_mad_k)
        if not counts:
            return result
        median = _median(counts)
        deviations: dict[float, int] = {}
        for value, k in counts.items():
            d = abs(value - median)
            deviations[d] = deviations.get(d, 0) + k
        mad = _median(deviations)
        result.median_tokens, result.mad_tokens = median, mad
        if mad == 0:
            return result
        limit = self.config.length_mad_k * mad
        result.low, result.high = max(0.0, median - limit), median + limit
        far = counted[np.abs(t["tokens"][counted] - median) > limit]
        check = self._pairs((line, 0) for line in t["line"][far].tolist())
        result.count, result.lines, result.truncated = check.count, check.lines, check.truncated
        return result

    def balance(self) -> AnswerBalance:
        """Label counts when the final answers look like classes."""
        c = self.config
        n_labels = len(self.labels)
        like = (
            self.n > 0
            and 2 <= n_labels <= c.balance_max_labels
            and self.n_long_answers <= 0.05 * self.n
        )
        if not like:
            return AnswerBalance(classification_like=False)
        ranked = sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0]))
        labelled = sum(self.labels.values())
        share = round(ranked[0][1] / labelled, 4)
        return AnswerBalance(
            classification_like=True,
            n_labels=n_labels,
            counts=dict(ranked),
            majority=ranked[0][0],
            majority_share=share,
            threshold=c.balance_majority_share,
            imbalanced=share > c.balance_majority_share,
        )

    def quality(self) -> Quality:
        """The report's quality section (without overlap)."""
        q = Quality(
            n_examples=self.n,
            near_duplicate_threshold=self.config.near_duplicate_threshold,
            exact_duplicates=self.exact_duplicates(),
            near_duplicates=self.near_duplicates(),
            conflicting_answers=self.conflicting_answers(),
            empty_answers=QualityCheck(
                count=self.empty.count,
                lines=self.empty.lines,
                truncated=self.empty.count > len(self.empty.lines),
            ),
            length_outliers=self.length_outliers(),
            answer_balance=self.balance(),
            diversity=Diversity(
                ngram=self.config.ngram,
                prompt_ngram_share=self.prompt_ngrams.share(),
                answer_ngram_share=self.answer_ngrams.share(),
            ),
        )
        q.warnings = quality_warnings(q)
        return q

    def overlap(self, valid: QualityIndex) -> Overlap:
        """Validation examples that repeat a training example exactly or nearly."""
        train, checked = self._rows(), valid._rows()
        known, first = np.unique(train["exact"], return_index=True)  # first: the earliest row
        at = np.minimum(np.searchsorted(known, checked["exact"]), max(0, len(known) - 1))
        repeated = (
            known[at] == checked["exact"] if len(known) else np.zeros(len(checked), dtype=bool)
        )
        exact_rows = np.flatnonzero(repeated)
        exact = self._pairs(
            zip(
                checked["line"][exact_rows].tolist(),
                train["line"][first[at[exact_rows]]].tolist(),
                strict=True,
            )
        )
        near = self._pairs(self._near_overlap(valid, np.flatnonzero(~repeated)))
        return Overlap(
            n_validation_examples=valid.n,
            exact=exact,
            near=near,
            leaked=exact.count + near.count > 0,
        )

    def _near_overlap(self, valid: QualityIndex, rows: I64s) -> Iterator[tuple[int, int]]:
        """(validation line, training line) for validation rows near a training example: of
        the first 50 training rows sharing a band, the first similar enough."""
        train, checked = self._rows(), valid._rows()
        keys = train.bands.reshape(-1)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        wanted = checked.bands[rows]
        lo = np.searchsorted(ordered, wanted, side="left")
        hi = np.searchsorted(ordered, wanted, side="right")
        threshold = self.config.near_duplicate_threshold
        for i in np.flatnonzero((hi > lo).any(axis=1)).tolist():
            found = [order[a:b] for a, b in zip(lo[i].tolist(), hi[i].tolist(), strict=True)]
            candidates = np.unique(np.concatenate(found) // self.bands)[:50]
            similar = self._similarity(valid, np.full(len(candidates), rows[i]), self, candidates)
            hit = np.flatnonzero(similar >= threshold)
            if len(hit):
                yield int(checked["line"][rows[i]]), int(train["line"][candidates[hit[0]]])

    def close(self) -> None:
        """Drop the temporary signature file."""
        self._view = None
        self._signatures.close()


def _median(counts: dict[Any, int]) -> float:
    """The median of value counts."""
    items = sorted(counts.items())
    total = sum(n for _, n in items)
    lo_k, hi_k = (total - 1) // 2, total // 2
    seen, lo, hi = 0, None, None
    for value, n in items:
        if lo is None and lo_k < seen + n:
            lo = value
        if hi_k < seen + n:
            hi = value
            break
        seen += n
    assert lo is not None and hi is not None
    return (lo + hi) / 2


def _lines(check: QualityCheck) -> str:
    more = f" and {check.count - len(check.lines)} more" if check.truncated else ""
    return ", ".join(map(str, check.lines)) + more


def quality_warnings(q: Quality) -> list[Finding]:
    """One warning per check that found something, naming its first lines."""
    out: list[Finding] = []

    def warn(code: str, message: str) -> None:
        out.append(Finding(line=None, code=code, message=message))

    if q.exact_duplicates.count:
        warn(
            "quality_exact_duplicates",
            f"{q.exact_duplicates.count} example(s) repeat an earlier prompt and answer "
            f"(ignoring case and spaces): lines {_lines(q.exact_duplicates)}",
        )
    if q.near_duplicates.count:
        warn(
            "quality_near_duplicates",
            f"{q.near_duplicates.count} example(s) are near duplicates (Jaccard >= "
            f"{q.near_duplicate_threshold}) of an earlier one: lines {_lines(q.near_duplicates)}",
        )
    if q.conflicting_answers.count:
        warn(
            "quality_conflicting_answers",
            f"{q.conflicting_answers.count} example(s) give another answer to an earlier "
            f"example's prompt: lines {_lines(q.conflicting_answers)}",
        )
    if q.empty_answers.count:
        warn(
            "quality_empty_answers",
            f"{q.empty_answers.count} final answer(s) are empty or whitespace: lines "
            f"{_lines(q.empty_answers)}",
        )
    lo = q.length_outliers
    if lo.count:
        warn(
            "quality_length_outliers",
            f"{lo.count} example(s) have a token count outside {lo.low:g}-{lo.high:g} (median "
            f"{lo.median_tokens:g} +- {lo.k:g} x MAD {lo.mad_tokens:g}): lines {_lines(lo)}",
        )
    ab = q.answer_balance
    if ab.imbalanced:
        warn(
            "quality_answer_imbalance",
            f"{(ab.majority_share or 0):.0%} of final answers are {ab.majority!r} (over "
            f"{ab.threshold:.0%}): a model may learn to always answer it",
        )
    if q.overlap is not None and q.overlap.leaked:
        ov = q.overlap
        warn(
            "quality_validation_overlap",
            f"{ov.exact.count + ov.near.count} of {ov.n_validation_examples} validation "
            f"example(s) repeat training examples (exact: lines {_lines(ov.exact) or 'none'}; "
            f"near: lines {_lines(ov.near) or 'none'} of the validation file)",
        )
    return out


class _QualityValidator(RangeValidator):
    """The range validator, feeding each example its checker accepted to a `QualityPass`."""

    def __init__(self, config: RangeConfig, rng: ByteRange, quality: QualityConfig) -> None:
        super().__init__(config, rng)
        self.quality = QualityPass(quality, config.file_format)

    def _checker(self, obj: dict[str, Any], ln: int) -> Checker | None:
        checker = super()._checker(obj, ln)
        if checker is None:
            return None
        # Accepted: the line is in the file's format (or, with none expected yet, its own).
        fmt = self.expected or detect_format(obj) or ""
        feed = self.quality.example

        def checked(c: Checks, o: dict[str, Any], line: int) -> Counted | None:
            counted = checker(c, o, line)
            # A malformed example the checks reported must not stop the pass (try: per line,
            # cheaper than contextlib.suppress).
            try:  # noqa: SIM105
                feed(o, fmt, line, None if counted is None else counted[0])
            except Exception:
                pass
            return counted

        return checked


def validate_range_quality(
    config: RangeConfig, rng: ByteRange, quality: QualityConfig
) -> tuple[RangeResult, QualityPart]:
    """Check every line of one range, collecting its quality part in the same pass."""
    validator = _QualityValidator(config, rng, quality)
    check = validator.line
    ln = 0
    for ln, raw in enumerate(iter_lines(Path(config.path), rng.start, rng.end), 1):
        check(raw, ln)
    validator.result.n_lines = ln
    return validator.result, validator.quality.finish()
