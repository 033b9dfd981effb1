"""Benchmark `ftq validate` against the tokenizer's own limit and the cookbook's naive loop.

    python bench/validate.py [--size-mb 200] [--small-mb 50] [--rounds 5]

Generates a seeded chat dataset (varied text; only a handful of shared system prompts repeat),
then times, in one run and on the same file:
  (a) the tokenizer limit: every content string already in memory, encoded on every core at once
      (one process per core) with the fastest tiktoken call measured here;
  (b) the naive baseline: `json.loads` per line and `encode` per message value in one thread, as
      OpenAI's cookbook does;
  (c) `ftq validate FILE --json` as a subprocess (interpreter start and vocabulary load included).
Each is run `--rounds` times and the best time kept (other processes share this machine). MB/s
are file megabytes over wall time. Peak RSS of (c) is sampled over its whole process tree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftq.shared.datasets.tokens import get_encoding  # noqa: E402

ENCODING = "o200k_base"
MODEL = "gpt-4o-mini-2024-07-18"
PUNCTUATION = [".", ",", ";", ":", "?", "!", " -", " (", ")", "'s", "\n", "\n\n", ' "', '"']


class TextGenerator:
    """Seeded word salad with English-like statistics: Zipf words, compounds, numbers, marks."""

    def __init__(self, seed: int) -> None:
        ranks = get_encoding(ENCODING)._mergeable_ranks
        self.rnd = random.Random(seed)
        self.words = sorted(t.decode() for t in ranks if re.fullmatch(rb" [a-z]{2,12}", t))
        self.pieces = sorted(t.decode() for t in ranks if re.fullmatch(rb"[a-z]{2,6}", t))
        self.rnd.shuffle(self.words)
        self.rnd.shuffle(self.pieces)
        self.word_weights = _zipf(len(self.words), 5)
        self.piece_weights = _zipf(len(self.pieces), 50)

    def paragraph(self, n_words: int) -> str:
        """`n_words` words with compounds, numbers, capitals and punctuation mixed in."""
        rnd = self.rnd
        out: list[str] = []
        for word in rnd.choices(self.words, cum_weights=self.word_weights, k=n_words):
            r = rnd.random()
            if r < 0.10:
                word += "".join(
                    rnd.choices(self.pieces, cum_weights=self.piece_weights, k=rnd.randint(1, 2))
                )
            elif r < 0.14:
                word = f" {rnd.randint(0, 10 ** rnd.randint(1, 6))}"
            if rnd.random() < 0.08:
                word = " " + word[1:].capitalize()
            out.append(word)
            if rnd.random() < 0.12:
                out.append(rnd.choice(PUNCTUATION))
        return "".join(out).strip()


def _zipf(n: int, offset: int) -> list[float]:
    """Cumulative Zipf weights for `n` ranked items."""
    total, cumulative = 0.0, []
    for i in range(n):
        total += 1 / (i + offset)
        cumulative.append(total)
    return cumulative


def generate(path: Path, size_mb: float, seed: int) -> dict[str, int]:
    """Write a chat dataset of about `size_mb` MB; return its shape."""
    gen = TextGenerator(seed)
    systems = [gen.paragraph(gen.rnd.randint(20, 60)) for _ in range(5)]
    target, written, examples, messages = int(size_mb * 1e6), 0, 0, 0
    with open(path, "wb") as f:
        while written < target:
            turns = [{"role": "system", "content": gen.rnd.choice(systems)}]
            for _ in range(gen.rnd.randint(1, 3)):
                turns.append({"role": "user", "content": gen.paragraph(gen.rnd.randint(8, 120))})
                turns.append(
                    {"role": "assistant", "content": gen.paragraph(gen.rnd.randint(15, 300))}
                )
            line = orjson.dumps({"messages": turns}) + b"\n"
            f.write(line)
            written, examples, messages = written + len(line), examples + 1, messages + len(turns)
    return {"bytes": written, "examples": examples, "messages": messages}


def head(src: Path, dst: Path, size_mb: float) -> None:
    """Copy whole lines from the start of `src` until `size_mb` MB."""
    target, written = int(size_mb * 1e6), 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            if written >= target:
                break
            out.write(line)
            written += len(line)


def repeated_strings(path: Path) -> tuple[int, int, int, float]:
    """(content strings, distinct ones, repeats outside system prompts, system share of bytes)."""
    seen: set[int] = set()
    total = repeats = system_bytes = all_bytes = 0
    distinct: set[int] = set()
    with open(path, "rb") as f:
        for raw in f:
            for m in orjson.loads(raw)["messages"]:
                h = hash(m["content"])
                total += 1
                distinct.add(h)
                size = len(m["content"].encode())
                all_bytes += size
                if m["role"] == "system":
                    system_bytes += size
                else:
                    repeats += h in seen
                    seen.add(h)
    return total, len(distinct), repeats, system_bytes / all_bytes


def contents(path: Path, part: int, parts: int) -> list[str]:
    """The content strings of every `parts`-th line, starting at line `part`."""
    out: list[str] = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f):
            if i % parts == part:
                out.extend(m["content"] for m in orjson.loads(raw)["messages"])
    return out


def tokenizer_calls() -> dict[str, Callable[[list[str]], int]]:
    """The ways tiktoken can count a list of strings."""
    enc = get_encoding(ENCODING)
    return {
        "encode_ordinary loop": lambda xs: sum(len(enc.encode_ordinary(x)) for x in xs),
        "encode loop": lambda xs: sum(len(enc.encode(x)) for x in xs),
        "encode_ordinary_batch": lambda xs: sum(map(len, enc.encode_ordinary_batch(xs))),
    }


def pick_tokenizer_call(path: Path, rounds: int = 3) -> tuple[str, dict[str, float]]:
    """Time each call on a sample of the data (best of `rounds`) and return the fastest."""
    sample = contents(path, 0, 20)
    size = sum(len(s.encode()) for s in sample) / 1e6
    speeds: dict[str, float] = {}
    for _ in range(rounds):
        for name, call in tokenizer_calls().items():
            started = time.perf_counter()
            call(sample)
            speeds[name] = max(speeds.get(name, 0.0), size / (time.perf_counter() - started))
    return max(speeds, key=lambda k: speeds[k]), speeds


def _limit_worker(args: tuple[str, str, int, int, Any, Any]) -> None:
    """Load this worker's share of strings, wait for all, encode, report (start, end)."""
    path, call_name, part, parts, barrier, queue = args
    call = tokenizer_calls()[call_name]
    strings = contents(Path(path), part, parts)
    barrier.wait()
    started = time.perf_counter()
    tokens = call(strings)
    queue.put((started, time.perf_counter(), tokens))


def tokenizer_limit(path: Path, call_name: str, cores: int) -> tuple[float, int]:
    """(a): wall time for every core to encode its share of the strings, and the tokens."""
    get_encoding(ENCODING)
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(cores), ctx.Queue()
    procs = [
        ctx.Process(target=_limit_worker, args=((str(path), call_name, k, cores, barrier, queue),))
        for k in range(cores)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return max(r[1] for r in results) - min(r[0] for r in results), sum(r[2] for r in results)


def naive(path: Path) -> tuple[float, int]:
    """(b): the cookbook's loop, one thread."""
    enc = get_encoding(ENCODING)
    started = time.perf_counter()
    tokens = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            example = json.loads(line)
            for message in example["messages"]:
                tokens += 3
                for value in message.values():
                    tokens += len(enc.encode(value))
            tokens += 3
    return time.perf_counter() - started, tokens


def _descendants(pid: int) -> list[int]:
    """A process and all its descendants, from /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # the process ended between two reads
            continue
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for pid in _descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(found.group(1)) * 1024 if found else 0
    return total


def ftq_validate(
    path: Path, sample_rss: bool = False, quality: bool = True
) -> tuple[float, int, dict[str, Any]]:
    """(c): wall time, peak RSS of the process tree (when sampled), and the report."""
    # Timed runs do not sample: the sampler would take CPU from the workers.
    cmd = [
        sys.executable,
        "-m",
        "ftq.services.cli.datasets",
        "validate",
        str(path),
        "--json",
        "--model",
        MODEL,
        *([] if quality else ["--no-quality"]),
    ]
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_rss:
        sampler.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    if sample_rss:
        sampler.join()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ftq validate failed with exit code {proc.returncode}")
    return elapsed, peak, json.loads(out)


def main() -> None:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--small-mb", type=float, default=50)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep generated files here (default: a temporary folder)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftq-bench-") as tmp:
        run(args, args.workdir or Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> None:
    """The whole benchmark in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    big, small = (
        workdir / f"chat_{args.size_mb:g}mb.jsonl",
        workdir / f"chat_{args.small_mb:g}mb.jsonl",
    )
    started = time.perf_counter()
    shape = generate(big, args.size_mb, args.seed)
    head(big, small, args.small_mb)
    total, distinct, repeats, system_share = repeated_strings(big)
    mb = shape["bytes"] / 1e6
    print(
        f"dataset: {mb:.1f} MB, {shape['examples']:,} examples, {shape['messages']:,} messages "
        f"(generated in {time.perf_counter() - started:.0f} s)"
    )
    print(
        f"  content strings {total:,}, distinct {distinct:,}; repeated outside the shared "
        f"system prompts: {repeats}; the 5 shared system prompts are {100 * system_share:.1f}% "
        "of content bytes"
    )
    call, speeds = pick_tokenizer_call(big)
    print(
        "tokenizer calls on a sample, one core: "
        + ", ".join(f"{k} {v:.1f} MB/s" for k, v in speeds.items())
        + f" -> {call}"
    )

    # Rounds interleave (a), (b) and (c) so that load from other processes hits all three.
    a_runs, b_runs, c_runs = [], [], []
    for _ in range(args.rounds):
        a_runs.append(tokenizer_limit(big, call, cores))
        b_runs.append(naive(big))
        c_runs.append(ftq_validate(big))
    (a_time, a_tokens), (b_time, b_tokens) = min(a_runs), min(b_runs)
    c_time, _, report = min(c_runs, key=lambda r: r[0])
    rss_rounds = min(2, args.rounds)
    small_peak = max(ftq_validate(small, sample_rss=True)[1] for _ in range(rss_rounds))
    big_peak = max(ftq_validate(big, sample_rss=True)[1] for _ in range(rss_rounds))
    results = summarise(mb, cores, a_time, b_time, c_time, small_peak, big_peak)
    print(
        f"content tokens (a): {a_tokens:,}; cookbook tokens (b): {b_tokens:,}; "
        f"ftq total tokens (c): {report['tokens']['total']['sum']:,}, "
        f"valid: {report['ok']}, examples: {report['n_examples']:,}"
    )
    results["quality_cost"] = round(quality_cost(big), 3)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "validate.json").write_text(json.dumps(results, indent=2) + "\n")


def quality_cost(path: Path, rounds: int = 3) -> float:
    """What the quality pass adds to `ftq validate` (median of `rounds`, interleaved runs).

    Wall time is the figure; the CPU time of the process tree is printed beside it because it
    does not move when other work shares the machine.
    """
    with_q, without, cpu_with, cpu_without = [], [], [], []
    for _ in range(rounds):
        for quality, walls, cpus in ((False, without, cpu_without), (True, with_q, cpu_with)):
            before = _children_cpu()
            walls.append(ftq_validate(path, quality=quality)[0])
            cpus.append(_children_cpu() - before)
    base, full = statistics.median(without), statistics.median(with_q)
    cost = full / base - 1
    cpu_cost = statistics.median(cpu_with) / statistics.median(cpu_without) - 1
    print(
        f"quality pass cost: {100 * cost:.0f}% [<=30%] (median of {rounds}: {full:.2f} s with, "
        f"{base:.2f} s without; CPU time +{100 * cpu_cost:.0f}%)"
    )
    return cost


def _children_cpu() -> float:
    """User plus system seconds of every finished child process (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarise(
    mb: float, cores: int, a: float, b: float, c: float, rss_small: int, rss_big: int
) -> dict[str, float]:
    """Print the figures and targets; return them."""
    r = {
        "cores": cores,
        "size_mb": round(mb, 1),
        "a_mb_s": mb / a,
        "b_mb_s": mb / b,
        "c_mb_s": mb / c,
        "c_over_a": a / c,
        "c_over_b": b / c,
        "rss_small_mb": rss_small / 1e6,
        "rss_big_mb": rss_big / 1e6,
        "rss_growth": rss_big / rss_small - 1,
    }
    print(f"cores: {cores}")
    print(f"(a) tokenizer limit, {cores} processes: {r['a_mb_s']:.1f} MB/s ({a:.2f} s)")
    print(f"(b) naive cookbook loop, 1 thread:   {r['b_mb_s']:.1f} MB/s ({b:.2f} s)")
    print(f"(c) ftq validate:                    {r['c_mb_s']:.1f} MB/s ({c:.2f} s)")
    print(
        f"c/a = {r['c_over_a']:.2f} (target >= 0.8)   "
        f"c/b = {r['c_over_b']:.2f} (target >= {0.9 * cores:.1f})"
    )
    print(
        f"peak RSS of (c), whole process tree: {r['rss_small_mb']:.0f} MB at the small file, "
        f"{r['rss_big_mb']:.0f} MB at {mb:.0f} MB: {100 * r['rss_growth']:+.1f}% "
        "(target within 10%)"
    )
    return {k: round(v, 3) for k, v in r.items()}


if __name__ == "__main__":
    main()
