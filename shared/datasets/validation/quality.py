"""Dataset quality: duplicates, near duplicates, conflicts, balance, outliers, diversity, leaks.

Fed example by example from the validator's single pass (each worker wraps its checkers), a
`QualityPart` keeps only hashes, MinHash signatures and counters for its byte range, never texts.
The parent folds the parts into a `QualityIndex`, whose rows live in a temporary SQLite database
that spills to disk, so memory stays flat whatever the file's size. Near duplicates are MinHash
LSH: signatures from `rensa` (a maintained Rust MinHash), bands picked for the threshold the way
datasketch does, candidates verified on their signatures.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
from array import array
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

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
_U64 = 1 << 64


@dataclass(frozen=True)
class QualityConfig:
    """The thresholds one pass needs (plain data, so it pickles into worker processes)."""

    near_duplicate_threshold: float = 0.8
    num_perm: int = 64
    ngram: int = 3
    max_words: int = 128
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


class Kmv:
    """K minimum values of 64-bit hashes: a mergeable estimate of how many are distinct."""

    __slots__ = ("heap", "members", "total")

    def __init__(self) -> None:
        self.heap: list[int] = []  # negated, so heap[0] is minus the largest kept value
        self.members: set[int] = set()
        self.total = 0

    def add_many(self, hashes: list[int]) -> None:
        """Count these hashes."""
        self.total += len(hashes)
        heap, members = self.heap, self.members
        if len(heap) >= KMV_SIZE:
            # Once full, few hashes beat the largest kept one: skip the rest in C.
            largest = -heap[0]
            if not hashes or min(hashes) >= largest:
                return
            hashes = [h for h in hashes if h < largest]
        for h in hashes:
            if h in members:
                continue
            if len(heap) < KMV_SIZE:
                heapq.heappush(heap, -h)
                members.add(h)
            elif h < -heap[0]:
                members.discard(-heapq.heappushpop(heap, -h))
                members.add(h)

    def merge(self, other: Kmv) -> None:
        """Fold another sketch in."""
        total = self.total + other.total
        self.add_many([-h for h in other.heap])
        self.total = total

    def distinct(self) -> float:
        """The estimated number of distinct hashes."""
        if len(self.heap) < KMV_SIZE:
            return float(len(self.heap))
        return (KMV_SIZE - 1) * _U64 / (-self.heap[0] + 1)

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
    """Feeds examples of one range into a `QualityPart`."""

    def __init__(self, config: QualityConfig, fmt: str | None) -> None:
        self.config = config
        self.fmt = fmt
        self.part = QualityPart()
        self.bands, self.rows = lsh_bands(config.near_duplicate_threshold, config.num_perm)

    def example(self, obj: dict[str, Any], fmt: str, line: int, tokens: int | None) -> None:
        """Take one parsed example in (its total tokens when it could be counted)."""
        prompt, answer = prompt_answer(obj, fmt)
        if answer is None:
            return
        c, p = self.config, self.part
        answer_words = answer.lower().split()
        if not answer_words:
            p.empty.add(line, c.listed_lines)
        prompt_words = prompt.lower().split()
        norm_answer = " ".join(answer_words)
        prompt_hash = _h63(" ".join(prompt_words).encode()) if prompt_words else 0
        answer_hash = _h63(norm_answer.encode())
        p.lines.append(line)
        p.tokens.append(-1 if tokens is None else tokens)
        p.exact.append(_h63(prompt_hash.to_bytes(8, "little") + answer_hash.to_bytes(8, "little")))
        p.prompts.append(prompt_hash)
        p.answers.append(answer_hash)
        if len(p.labels) <= c.balance_max_labels:
            if norm_answer and len(norm_answer) <= c.balance_label_max_chars:
                p.labels[norm_answer] = p.labels.get(norm_answer, 0) + 1
            else:
                p.n_long_answers += 1
        grams = self._grams(prompt_words)
        n_prompt = len(grams)
        grams += self._grams(answer_words)
        (hashed,) = RMinHash.hash_token_sets([grams])
        p.prompt_ngrams.add_many(hashed[:n_prompt])
        p.answer_ngrams.add_many(hashed[n_prompt:])
        mh = RMinHash(c.num_perm, SEED)
        mh.update(grams or [""])
        sig = array("I", mh.digest())
        p.signatures.extend(sig)
        raw, step = sig.tobytes(), 4 * self.rows
        for b in range(self.bands):
            p.bands.append(_h63(bytes((b,)) + raw[b * step : b * step + step]))

    def _grams(self, words: list[str]) -> list[str]:
        """Word n-grams of the first and last `max_words / 2` words (the words if fewer).

        Long prompts often share a preamble and differ at the end (the question), so both ends
        count; the cap bounds the cost of very long examples.
        """
        cap, n = self.config.max_words, self.config.ngram
        if len(words) > cap:
            words = words[: cap // 2] + words[-(cap - cap // 2) :]
        if len(words) < n:
            return [" ".join(words)] if words else []
        return list(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))


_SCHEMA = """
CREATE TABLE ex (line INTEGER PRIMARY KEY, exact INTEGER, prompt INTEGER, answer INTEGER,
                 tokens INTEGER, sig BLOB);
CREATE TABLE band (k INTEGER NOT NULL, line INTEGER NOT NULL);
"""
_FIRST_EXACT = """
SELECT e.line, f.first FROM ex e
JOIN (SELECT exact, MIN(line) AS first FROM ex GROUP BY exact HAVING COUNT(*) > 1) f
  ON e.exact = f.exact WHERE e.line > f.first ORDER BY e.line
"""
_CONFLICTS = """
SELECT e.line, f.first FROM ex e
JOIN (SELECT prompt, MIN(line) AS first FROM ex WHERE prompt != 0 GROUP BY prompt
      HAVING COUNT(DISTINCT answer) > 1) f ON e.prompt = f.prompt
JOIN ex g ON g.line = f.first
WHERE e.line > f.first AND e.answer != g.answer ORDER BY e.line
"""
_NEAR = """
SELECT b.line, MIN(f.first) FROM band b
JOIN (SELECT k, MIN(line) AS first FROM band GROUP BY k HAVING COUNT(*) > 1) f ON b.k = f.k
WHERE b.line > f.first GROUP BY b.line ORDER BY b.line
"""


def _similar(a: bytes, b: bytes) -> float:
    """The Jaccard estimate of two signatures: the share of equal minimums."""
    x, y = array("I"), array("I")
    x.frombytes(a)
    y.frombytes(b)
    return sum(1 for i, j in zip(x, y, strict=True) if i == j) / max(1, len(x))


class QualityIndex:
    """A whole file's quality rows in a temporary database, and the checks over them."""

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.bands, self.rows = lsh_bands(config.near_duplicate_threshold, config.num_perm)
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)
        self.n = 0
        self.empty = Capped()
        self.labels: dict[str, int] = {}
        self.n_long_answers = 0
        self.prompt_ngrams, self.answer_ngrams = Kmv(), Kmv()
        self._indexed = False

    def add(self, part: QualityPart, offset: int) -> None:
        """Fold one range's part in; its lines follow the `offset` lines merged so far."""
        per = self.config.num_perm
        sigs = part.signatures
        self._db.executemany(
            "INSERT INTO ex VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    line + offset,
                    part.exact[i],
                    part.prompts[i],
                    part.answers[i],
                    part.tokens[i],
                    sigs[i * per : (i + 1) * per].tobytes(),
                )
                for i, line in enumerate(part.lines)
            ),
        )
        nb = self.bands
        self._db.executemany(
            "INSERT INTO band VALUES (?, ?)",
            ((k, part.lines[j // nb] + offset) for j, k in enumerate(part.bands)),
        )
        self.n += len(part.lines)
        self.empty.merge(part.empty, offset, self.config.listed_lines)
        for label, count in part.labels.items():
            self.labels[label] = self.labels.get(label, 0) + count
        self.n_long_answers += part.n_long_answers
        self.prompt_ngrams.merge(part.prompt_ngrams)
        self.answer_ngrams.merge(part.answer_ngrams)

    def _index(self) -> None:
        if not self._indexed:
            self._db.execute("CREATE INDEX ex_exact ON ex (exact)")
            self._db.execute("CREATE INDEX band_k ON band (k)")
            self._indexed = True

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

    def _near_rows(self) -> Iterator[tuple[int, int]]:
        threshold = self.config.near_duplicate_threshold
        get = self._db.cursor()
        for line, first in self._db.execute(_NEAR).fetchall():
            (a, ea), (b, eb) = get.execute(
                "SELECT sig, exact FROM ex WHERE line IN (?, ?) ORDER BY line", (first, line)
            ).fetchall()
            if ea != eb and _similar(a, b) >= threshold:
                yield line, first

    def length_outliers(self) -> LengthOutliers:
        """Examples whose token count lies over k median absolute deviations from the median."""
        counts = dict(
            self._db.execute("SELECT tokens, COUNT(*) FROM ex WHERE tokens >= 0 GROUP BY tokens")
        )
        result = LengthOutliers(k=self.config.length_mad_k)
        if not counts:
            return result
        median = _median(counts)
        deviations: dict[float, int] = {}
        for value, n in counts.items():
            d = abs(value - median)
            deviations[d] = deviations.get(d, 0) + n
        mad = _median(deviations)
        result.median_tokens, result.mad_tokens = median, mad
        if mad == 0:
            return result
        limit = self.config.length_mad_k * mad
        result.low, result.high = max(0.0, median - limit), median + limit
        rows = self._db.execute(
            "SELECT line, ABS(tokens - ?) FROM ex WHERE tokens >= 0 AND ABS(tokens - ?) > ? "
            "ORDER BY line",
            (median, median, limit),
        )
        check = self._pairs((line, 0) for line, _ in rows)
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
        self._index()
        q = Quality(
            n_examples=self.n,
            near_duplicate_threshold=self.config.near_duplicate_threshold,
            exact_duplicates=self._pairs(iter(self._db.execute(_FIRST_EXACT).fetchall())),
            near_duplicates=self._pairs(self._near_rows()),
            conflicting_answers=self._pairs(iter(self._db.execute(_CONFLICTS).fetchall())),
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
        self._index()
        valid._index()
        threshold = self.config.near_duplicate_threshold
        train = self._db.cursor()

        def exact_rows() -> Iterator[tuple[int, int]]:
            for line, h in valid._db.execute("SELECT line, exact FROM ex ORDER BY line"):
                (first,) = train.execute(
                    "SELECT MIN(line) FROM ex WHERE exact = ?", (h,)
                ).fetchone()
                if first is not None:
                    yield line, first

        def near_rows() -> Iterator[tuple[int, int]]:
            vb = valid._db.cursor()
            for line, h, sig in valid._db.execute("SELECT line, exact, sig FROM ex ORDER BY line"):
                if train.execute("SELECT 1 FROM ex WHERE exact = ?", (h,)).fetchone():
                    continue
                keys = [k for (k,) in vb.execute("SELECT k FROM band WHERE line = ?", (line,))]
                marks = ",".join("?" * len(keys))
                candidates = train.execute(
                    f"SELECT DISTINCT e.line, e.sig FROM band b JOIN ex e ON e.line = b.line "
                    f"WHERE b.k IN ({marks}) ORDER BY e.line LIMIT 50",
                    keys,
                ).fetchall()
                for first, other in candidates:
                    if _similar(sig, other) >= threshold:
                        yield line, first
                        break

        exact, near = self._pairs(exact_rows()), self._pairs(near_rows())
        return Overlap(
            n_validation_examples=valid.n,
            exact=exact,
            near=near,
            leaked=exact.count + near.count > 0,
        )

    def close(self) -> None:
        """Drop the temporary database."""
        self._db.close()


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
        fmt = detect_format(obj) or self.expected or ""
        feed = self.quality.example

        def checked(c: Checks, o: dict[str, Any], line: int) -> Counted | None:
            counted = checker(c, o, line)
            # A malformed example the checks already reported must not stop the pass.
            with suppress(Exception):
                feed(o, fmt, line, None if counted is None else counted[0])
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
    return validator.result, validator.quality.part
