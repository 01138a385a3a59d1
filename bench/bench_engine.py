"""Rule engine throughput against DeepDiff and orjson, side by side in one run.

    .venv/bin/python bench/bench_engine.py [--repeat N] [--deepdiff-sizes 10,50]

For 3 sizes of an AniLibria-like ``/v3/title/updates`` page (10, 50 and 250 titles; 50 is about
330 KB) and a realistically mutated copy (see ``anilibria_corpus.mutate``), it times:

- ``orjson.loads`` of one document: the reference for the identical-document figures;
- our comparator on identical documents: byte-identical bodies, and the same document
  re-serialised (indented, so the bytes differ and both sides must be parsed and walked);
- our comparator on the mutated pair, with rules equivalent to the DeepDiff call below, and
  with the full ``rules/anilibria.yaml`` (titles.updates);
- DeepDiff 9 on the mutated pair: ``ignore_order=True`` with the same fields excluded
  (``math_epsilon`` has no effect on nested objects with ``ignore_order``, so the rating is
  excluded rather than given a tolerance; DeepDiff also gets the documents already parsed).

Every figure of ours goes through :func:`shadowproxy.compare.comparator.compare` on a full
``Exchange``, so bytes are decoded and parsed as in the proxy. Times are CPU times, the best of
repeated samples. Throughput ratios against orjson count input bytes: a comparison consumes two
bodies.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from deepdiff import DeepDiff

sys.path.insert(0, str(Path(__file__).parent))

from anilibria_corpus import mutate, title_list

from shadowproxy.compare.comparator import compare
from shadowproxy.model import CapturedRequest, CapturedResponse, Exchange, Verdict
from shadowproxy.rules import EndpointRules, load_ruleset, parse_ruleset

ROOT = Path(__file__).parents[1]
EQUIVALENT_RULES = parse_ruleset(
    "version: 1\n"
    "defaults:\n"
    "  ignore: ['**/in_favorites', '**/updated', '**/seeders']\n"
    "  unordered: {/list: {key: id}, '**/genres': {}, '**/team/voice': {}}\n"
    "  tolerance: {'**/rating': {abs: 0.01}}\n"
).defaults
DEEPDIFF_OPTIONS: dict[str, Any] = {
    "ignore_order": True,
    "exclude_regex_paths": [
        r"\['in_favorites'\]$",
        r"\['updated'\]$",
        r"\['seeders'\]$",
        r"\['rating'\]$",
    ],
}
JSON_HEADERS = (("content-type", "application/json; charset=utf-8"),)


def timed(action: Callable[[], object], repeat: int, budget_s: float = 3.0) -> float:
    """Seconds of one call, best of ``repeat`` samples (each the mean of a batch filling ~10 ms).

    CPU time of this process (``time.process_time``), and the best sample, as ``timeit``
    advises: on a shared machine wall time and the slower samples measure the neighbours.
    Every figure in the table is taken the same way, in the same run."""
    started = time.process_time()
    action()
    once = max(time.process_time() - started, 1e-7)
    batch = max(1, int(0.01 / once))
    samples = []
    deadline = time.process_time() + budget_s
    for _ in range(repeat):
        begin = time.process_time()
        for _ in range(batch):
            action()
        samples.append((time.process_time() - begin) / batch)
        if time.process_time() > deadline and len(samples) >= 3:
            break
    return min(samples)


def exchange(primary: bytes, shadow: bytes) -> Exchange:
    request = CapturedRequest("GET", "/v3/title/updates", "limit=50", (), b"", time.time())
    return Exchange(
        id="bench",
        endpoint="titles.updates",
        request=request,
        primary=CapturedResponse(200, JSON_HEADERS, primary, 0.01),
        shadow=CapturedResponse(200, JSON_HEADERS, shadow, 0.01),
    )


def measure(size: int, updates_rules: EndpointRules, deepdiff: bool, repeat: int) -> dict[str, Any]:
    """All figures for one document size."""
    doc = title_list(size)
    raw = orjson.dumps(doc)
    pretty = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    mutated = orjson.dumps(mutate(doc))
    row: dict[str, Any] = {"titles": size, "kb": len(raw) / 1024}

    def ours(a: bytes, b: bytes, rules: EndpointRules, verdict: Verdict) -> float:
        ex = exchange(a, b)
        result = compare(ex, rules, "bench")
        assert verdict == result.verdict, (result.verdict, result.differences[:3])
        return timed(lambda: compare(ex, rules, "bench"), repeat)

    row["orjson_parse"] = timed(lambda: orjson.loads(raw), repeat)
    row["identical_bytes"] = ours(raw, raw, EQUIVALENT_RULES, Verdict.MATCH)
    row["identical_reserialised"] = ours(raw, pretty, EQUIVALENT_RULES, Verdict.MATCH)
    row["mutated_equivalent"] = ours(raw, mutated, EQUIVALENT_RULES, Verdict.MISMATCH)
    row["mutated_anilibria"] = ours(raw, mutated, updates_rules, Verdict.MISMATCH)
    row["differences"] = len(compare(exchange(raw, mutated), EQUIVALENT_RULES, "b").differences)
    if deepdiff:
        left, right = orjson.loads(raw), orjson.loads(mutated)
        result = DeepDiff(left, right, **DEEPDIFF_OPTIONS)
        row["deepdiff_changes"] = sum(len(v) for v in result.values())
        row["deepdiff"] = timed(
            lambda: DeepDiff(left, right, **DEEPDIFF_OPTIONS), max(3, repeat // 10), 20.0
        )
    print(f"measured {size} titles", file=sys.stderr)
    return row


def run(sizes: list[int], deepdiff_sizes: set[int], repeat: int) -> list[dict[str, Any]]:
    """Measure every size; DeepDiff only for ``deepdiff_sizes`` (it takes seconds per call)."""
    anilibria = load_ruleset(ROOT / "rules" / "anilibria.yaml")
    updates_rules = anilibria.by_name("titles.updates")
    assert updates_rules is not None
    return [measure(size, updates_rules, size in deepdiff_sizes, repeat) for size in sizes]


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores (shared, noisy), "
        f"Python {platform.python_version()}, orjson {orjson.__version__}, "
        f"DeepDiff {__import__('deepdiff').__version__}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    ms = 1000.0
    lines = [
        "| titles | size | orjson parse, 1 body | ours, identical bytes (throughput ÷ orjson's) "
        "| ours, identical re-serialised (÷ orjson's) | ours, mutated, equivalent rules "
        "| ours, mutated, anilibria.yaml | DeepDiff, mutated | DeepDiff time ÷ ours |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        deep = row.get("deepdiff")
        deep_text = f"{deep * ms:.0f} ms" if deep else "—"
        ratio = f"{deep / row['mutated_equivalent']:.0f}×" if deep else "—"
        lines.append(
            f"| {row['titles']} | {row['kb']:.0f} KB | {row['orjson_parse'] * ms:.2f} ms "
            f"| {row['identical_bytes'] * ms:.3f} ms "
            f"({2 * row['orjson_parse'] / row['identical_bytes']:.0f}×) "
            f"| {row['identical_reserialised'] * ms:.2f} ms "
            f"({2 * row['orjson_parse'] / row['identical_reserialised']:.2f}×) "
            f"| {row['mutated_equivalent'] * ms:.2f} ms "
            f"| {row['mutated_anilibria'] * ms:.2f} ms "
            f"| {deep_text} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,250", help="titles per document")
    parser.add_argument("--deepdiff-sizes", default="10,50", help="sizes DeepDiff also runs on")
    parser.add_argument("--repeat", type=int, default=30, help="samples per figure")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    deepdiff_sizes = {int(s) for s in args.deepdiff_sizes.split(",") if s}
    rows = run(sizes, deepdiff_sizes, args.repeat)
    print(f"Machine: {machine()}\n")
    print(table(rows))
    for row in rows:
        extra = f", DeepDiff reports {row['deepdiff_changes']}" if "deepdiff_changes" in row else ""
        print(f"\n{row['titles']} titles: we report {row['differences']} differences{extra}.")


if __name__ == "__main__":
    main()
