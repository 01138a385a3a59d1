"""The comparator: one :class:`~shadowproxy.model.Exchange` in, one
:class:`~shadowproxy.model.Comparison` out.

A pure function of its arguments, meant to run in a worker process off the serving loop. It
never raises for anything a backend sent: undecodable or unparseable bodies are ``unparseable``
differences, oversized ones a skip.

Verdicts, in order of precedence:

- the primary failed → ``skipped`` (``primary_error: <kind>``);
- either body was truncated at the capture cap, or decodes beyond the limit → ``skipped``
  (``too_large``);
- the shadow failed → ``shadow_error`` (reason: the error kind);
- the shadow answered 5xx and the primary did not → ``shadow_error`` (``status 503``), with the
  status and header differences listed;
- any difference → ``mismatch``; otherwise ``match``.
"""

from __future__ import annotations

import hashlib
import time

from shadowproxy.compare.body import (
    DecodeError,
    TooLargeError,
    decode,
    excerpt,
    is_json_type,
    looks_like_json,
    parse_json,
)
from shadowproxy.compare.differ import diff_documents, shorten
from shadowproxy.memory import collector_paused
from shadowproxy.model import (
    BackendError,
    CapturedResponse,
    Comparison,
    Difference,
    DiffKind,
    Exchange,
    Severity,
    Verdict,
    header_value,
)
from shadowproxy.rules.pointer import escape
from shadowproxy.rules.ruleset import EndpointRules, HeaderRule

TEXT_CONTEXT = 80
"""Characters of context shown before the first differing byte of a text body."""
VALUE_CAP = 64 * 1024
"""Longest value a difference carries (characters of a string, bytes of a serialised container);
longer ones are shortened, so one huge field cannot bloat the store and every sink after it."""


def fingerprint(endpoint: str, differences: tuple[Difference, ...] | list[Difference]) -> str:
    """Short hex hash of the endpoint and the set of (template, kind): equal mismatches share it."""
    signature = sorted({(d.template, str(d.kind)) for d in differences})
    text = endpoint + "|" + "|".join(f"{t}\x00{k}" for t, k in signature)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _media_type(value: str) -> str:
    # "Application/JSON ; Charset=UTF-8" and "application/json;charset=utf-8" are the same type.
    parts = [p.strip().lower() for p in value.split(";")]
    params = sorted(p.replace(" ", "").replace('"', "") for p in parts[1:] if p)
    return ";".join([parts[0], *params])


def _header_differences(
    primary: CapturedResponse, shadow: CapturedResponse, rules: tuple[HeaderRule, ...]
) -> list[Difference]:
    out = []
    for rule in rules:
        values = []
        for response in (primary, shadow):
            value = header_value(response.headers, rule.name)
            if value is not None:
                value = value.strip()
                if rule.name == "content-type":
                    value = _media_type(value)
                for normalizer in rule.normalize:
                    value = normalizer.apply(value)
            values.append(value)
        if values[0] != values[1]:
            pointer = "/headers/" + escape(rule.name)
            out.append(
                Difference(
                    pointer=pointer,
                    template=pointer,
                    kind=DiffKind.HEADER,
                    primary=header_value(primary.headers, rule.name),
                    shadow=header_value(shadow.headers, rule.name),
                )
            )
    return out


def _first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first differing byte (the shorter length when one is a prefix)."""
    # Chunk by chunk with memcmp, then byte by byte inside the first differing chunk: a Python
    # loop over every byte of a 50 MB body would take seconds.
    chunk = 4096
    end = min(len(a), len(b))
    start = 0
    while start < end and a[start : start + chunk] == b[start : start + chunk]:
        start += chunk
    for index in range(start, min(start + chunk, end)):
        if a[index] != b[index]:
            return index
    return end


def _text_difference(a: bytes, b: bytes) -> Difference:
    offset = _first_difference(a, b)
    start = max(0, offset - TEXT_CONTEXT)
    return Difference(
        pointer="",
        template="",
        kind=DiffKind.TEXT,
        primary=excerpt(a[start:]),
        shadow=excerpt(b[start:]),
        label=f"(body, from byte {start})" if start else "(body)",
    )


class _TooLargeError(Exception):
    """A body decodes beyond the limit: the comparison is skipped."""


def _body_differences(
    primary: CapturedResponse, shadow: CapturedResponse, rules: EndpointRules
) -> list[Difference]:
    if rules.matcher.root.ignore:
        return []  # `ignore: [""]`: the body is not compared at all, JSON or not
    decoded: list[bytes] = []
    problems: list[str] = []
    for response in (primary, shadow):
        try:
            decoded.append(
                decode(response.body, header_value(response.headers, "content-encoding"))
            )
            problems.append("")
        except TooLargeError:
            raise _TooLargeError from None
        except DecodeError as exc:
            decoded.append(b"")
            problems.append(str(exc))
    a, b = decoded
    if any(problems):
        return [_unparseable(*problems)]
    # The fast path: identical bytes need no parsing (unless a transform reshapes one side).
    if a == b and not (rules.transform_primary or rules.transform_shadow):
        return []
    if not a.strip() or not b.strip():
        # One side sent no body at all (a 204 against a 200, say): the whole body is missing or
        # extra, not unparseable.
        return [_one_sided(a, b)]
    types = [header_value(r.headers, "content-type") for r in (primary, shadow)]
    is_json = any(is_json_type(t) for t in types) or (
        not any(types) and looks_like_json(a) and looks_like_json(b)
    )
    if not is_json:
        return [] if a == b else [_text_difference(a, b)]
    parsed_a, parsed_b = parse_json(a), parse_json(b)
    if not (parsed_a.ok and parsed_b.ok):
        return [
            _unparseable(
                "" if parsed_a.ok else f"{parsed_a.problem}; starts: {excerpt(a, 80)}",
                "" if parsed_b.ok else f"{parsed_b.problem}; starts: {excerpt(b, 80)}",
            )
        ]
    return diff_documents(parsed_a.value, parsed_b.value, rules, value_cap=VALUE_CAP)


def _one_sided(a: bytes, b: bytes) -> Difference:
    present = a if a.strip() else b
    parsed = parse_json(present)
    value = shorten(parsed.value, VALUE_CAP) if parsed.ok else excerpt(present)
    if a.strip():
        return Difference(pointer="", template="", kind=DiffKind.MISSING, primary=value)
    return Difference(pointer="", template="", kind=DiffKind.EXTRA, shadow=value)


def _unparseable(primary_problem: str, shadow_problem: str) -> Difference:
    return Difference(
        pointer="",
        template="",
        kind=DiffKind.UNPARSEABLE,
        primary=primary_problem or None,
        shadow=shadow_problem or None,
    )


def compare(exchange: Exchange, rules: EndpointRules, ruleset_version: str) -> Comparison:
    """Compare the exchange's two outcomes under ``rules``; never raises for backend content."""
    started = time.perf_counter()
    primary, shadow = exchange.primary, exchange.shadow

    def done(
        verdict: Verdict, differences: list[Difference] | None = None, reason: str = ""
    ) -> Comparison:
        found = tuple(differences or ())
        return Comparison(
            exchange=exchange,
            verdict=verdict,
            differences=found,
            ruleset_version=ruleset_version,
            fingerprint=fingerprint(exchange.endpoint, found) if found else "",
            reason=reason,
            duration=time.perf_counter() - started,
            critical=any(d.severity is Severity.CRITICAL for d in found),
        )

    if isinstance(primary, BackendError):
        return done(Verdict.SKIPPED, reason=f"primary_error: {primary.kind}")
    if primary.truncated or (isinstance(shadow, CapturedResponse) and shadow.truncated):
        return done(Verdict.SKIPPED, reason="too_large")
    if isinstance(shadow, BackendError):
        return done(Verdict.SHADOW_ERROR, reason=str(shadow.kind))
    differences: list[Difference] = []
    if not rules.status_equal(primary.status, shadow.status):
        differences.append(
            Difference(
                pointer="/status",
                template="/status",
                kind=DiffKind.STATUS,
                primary=primary.status,
                shadow=shadow.status,
            )
        )
    differences += _header_differences(primary, shadow, rules.headers)
    if shadow.status >= 500 and primary.status < 500:
        # The shadow broke; its error page against the primary's body would only be noise.
        return done(Verdict.SHADOW_ERROR, differences, reason=f"status {shadow.status}")
    try:
        with collector_paused():
            differences += _body_differences(primary, shadow, rules)
    except _TooLargeError:
        return done(Verdict.SKIPPED, reason="too_large")
    return done(Verdict.MISMATCH if differences else Verdict.MATCH, differences)
