"""Secrets out before anything is stored: headers, query parameters and JSON body fields.

:func:`redact_comparison` is pure and runs in the comparator's worker process, so a secret never
reaches the store writer, its disk spool or the store. What it touches:

- request and response headers named in the policy (``authorization``, ``cookie``,
  ``set-cookie``, ``proxy-authorization``, ``x-api-key`` and configured ones). Cookie names, the
  auth scheme and Set-Cookie attributes stay readable; only the secret parts are replaced;
- query parameters named in the policy, in the request target, in ``Location``/``Referer``
  headers and in form-encoded request bodies;
- JSON body fields of requests and responses: by name at any depth (``password``) or by JSON
  Pointer path with ``*`` (one level) and ``**`` (any depth), e.g. ``/user/*/token``. Encoded
  bodies are decoded first and stored decoded (see :mod:`shadowproxy.store.content`);
- the primary and shadow values of differences at redacted places.

Bodies are cut to the store's ``--store-body-max`` here (after decoding, as the store would), and
only the part kept is searched for secret names: a 330 KB body costs a 64 KB scan, and neither
the writer's spool nor the pickle back to the serving process carries bytes nobody stores. A body
with a secret name in the kept part is still parsed whole, so path rules and nested values are
masked as before the cut.

A value becomes ``"[redacted]"``, or ``"hmac:<16 hex>"`` (HMAC-SHA256 under a configured key), so
that "primary and shadow sent the same token" stays visible without the token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus

import orjson

from shadowproxy.model import (
    CapturedRequest,
    CapturedResponse,
    Comparison,
    Difference,
    DiffKind,
    Exchange,
    Headers,
    Outcome,
    Verdict,
)
from shadowproxy.store.content import decode_body

if TYPE_CHECKING:
    from shadowproxy.settings import Settings

REDACTED = "[redacted]"

DEFAULT_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
)
DEFAULT_QUERY = frozenset({"token", "key", "password", "secret", "api_key", "access_token"})
DEFAULT_BODY = (
    "password",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "client_secret",
)
"""Body field names redacted even when no rule names them."""

_URL_HEADERS = frozenset({"location", "content-location", "referer"})
_FULL_BODY_VERDICTS = frozenset({Verdict.MISMATCH, Verdict.SHADOW_ERROR})


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What to redact and how. Build with :meth:`build` to extend the defaults."""

    headers: frozenset[str] = DEFAULT_HEADERS
    """Lower-case header names."""
    query: frozenset[str] = DEFAULT_QUERY
    """Lower-case query parameter names."""
    body: tuple[str, ...] = DEFAULT_BODY
    """JSON field names (any depth) or JSON Pointer paths with ``*`` and ``**``."""
    hmac_key: bytes = b""
    """When set, values become ``hmac:<hex16>`` instead of ``[redacted]``."""
    body_max: int = 0
    """Bytes of each decoded body kept (the store's cap); 0 keeps them whole."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _paths: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names, paths = _split_body_rules(self.body)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_paths", paths)

    @classmethod
    def build(
        cls,
        *,
        headers: Iterable[str] = (),
        query: Iterable[str] = (),
        body: Iterable[str] = (),
        hmac_key: str | bytes = b"",
        body_max: int = 0,
    ) -> RedactionPolicy:
        """The defaults plus the given names (e.g. from settings' ``redact_*``)."""
        key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        return cls(
            headers=DEFAULT_HEADERS | {h.strip().lower() for h in headers if h.strip()},
            query=DEFAULT_QUERY | {q.strip().lower() for q in query if q.strip()},
            body=tuple(dict.fromkeys((*DEFAULT_BODY, *body))),
            hmac_key=key,
            body_max=max(0, body_max),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactionPolicy:
        """The defaults plus ``--redact-headers``, ``--redact-query`` and ``--redact-hmac-key``;
        bodies cut to ``--store-body-max``."""
        return cls.build(
            headers=settings.redact_headers,
            query=settings.redact_query,
            hmac_key=settings.redact_hmac_key,
            body_max=settings.store_body_max,
        )

    def mask(self, value: Any) -> str:
        """The replacement for one secret value."""
        if not self.hmac_key:
            return REDACTED
        raw = (
            value.encode()
            if isinstance(value, str)
            else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        )
        return "hmac:" + hmac.new(self.hmac_key, raw, hashlib.sha256).hexdigest()[:16]

    def with_body(self, paths: Iterable[str]) -> RedactionPolicy:
        """This policy plus more body fields (an endpoint's ``redact:`` list)."""
        extra = tuple(p for p in paths if p not in self.body)
        return replace(self, body=self.body + extra) if extra else self


def _split_body_rules(rules: Iterable[str]) -> tuple[frozenset[str], tuple[tuple[str, ...], ...]]:
    names: set[str] = set()
    paths: list[tuple[str, ...]] = []
    for rule in rules:
        if rule.startswith(("/", "**")):
            paths.append(
                tuple(_unescape(s) for s in rule.lstrip("/").split("/")) if rule != "/" else ()
            )
        elif rule:
            names.add(rule.lower())
    return frozenset(names), tuple(paths)


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Does a concrete path match a pattern with ``*`` (one segment) and ``**`` (any number)?"""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return (head in {"*", path[0]}) and _matches(rest, path[1:])


class _Redactor:
    """One policy applied to the parts of one comparison."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._name_re = (
            re.compile(
                r'("(?:'
                + "|".join(re.escape(n) for n in sorted(policy._names))
                + r')"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)',
                re.IGNORECASE,
            )
            if policy._names
            else None
        )
        names = {name.encode() for name in policy._names}
        # A name that contains another is found by the shorter one ("token" in "access_token"):
        # each needle left costs a pass over the body.
        self._needles = tuple(sorted(n for n in names if not any(o != n and o in n for o in names)))

    def _clean(self, data: bytes) -> bool:
        """True when no secret can be in this JSON text: no secret field name occurs in it at all
        (and no path rule or escaped key could hide one). Walking a parsed 300 KB body costs
        several times its comparison; a substring search costs a fraction of a millisecond."""
        if self.policy._paths or b"\\u" in data:
            return False
        lowered = data.lower()
        return not any(needle in lowered for needle in self._needles)

    # --- paths ------------------------------------------------------------------------------

    def secret_path(self, path: tuple[str, ...]) -> bool:
        if path and path[-1].lower() in self.policy._names:
            return True
        return any(_matches(p, path) for p in self.policy._paths)

    def value(self, value: Any, path: tuple[str, ...]) -> tuple[Any, bool]:
        """``value`` (found at ``path``) with every secret inside it masked; and whether any was."""
        if self.secret_path(path):
            return self.policy.mask(value), True
        if isinstance(value, dict):
            changed = False
            out: dict[str, Any] = {}
            for key, item in value.items():
                out[key], hit = self.value(item, (*path, str(key)))
                changed |= hit
            return (out, True) if changed else (value, False)
        if isinstance(value, list):
            changed = False
            items: list[Any] = []
            for index, item in enumerate(value):
                new, hit = self.value(item, (*path, str(index)))
                items.append(new)
                changed |= hit
            return (items, True) if changed else (value, False)
        return value, False

    # --- query strings and headers ----------------------------------------------------------

    def query(self, query: str) -> str:
        if not query:
            return query
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if eq and unquote_plus(name).strip().lower() in self.policy.query:
                parts[i] = f"{name}={quote(self.policy.mask(unquote_plus(value)), safe=':[]')}"
                changed = True
        return "&".join(parts) if changed else query

    def url(self, url: str) -> str:
        base, q, rest = url.partition("?")
        if not q:
            return url
        query, hash_, fragment = rest.partition("#")
        return f"{base}?{self.query(query)}{hash_}{fragment}"

    def header_value(self, name: str, value: str) -> str:
        mask = self.policy.mask
        if name in {"cookie"}:
            return "; ".join(_cookie_pair(part.strip(), mask) for part in value.split(";"))
        if name == "set-cookie":
            first, sep, attributes = value.partition(";")
            return _cookie_pair(first.strip(), mask) + sep + attributes
        if name in {"authorization", "proxy-authorization"}:
            scheme, space, credentials = value.strip().partition(" ")
            if space and scheme.isalpha():
                return f"{scheme} {mask(credentials.strip())}"
        return mask(value)

    def headers(self, headers: Headers) -> Headers:
        out: list[tuple[str, str]] = []
        changed = False
        for key, value in headers:
            name = key.lower()
            new = value
            if name in self.policy.headers:
                new = self.header_value(name, value)
            elif name in _URL_HEADERS:
                new = self.url(value)
            changed |= new != value
            out.append((key, new))
        return tuple(out) if changed else headers

    # --- bodies -----------------------------------------------------------------------------

    def body(
        self, headers: Headers, body: bytes, *, form: bool = False
    ) -> tuple[Headers, bytes, bool]:
        """Headers and body with secret fields masked (decoded when anything was masked or the
        body was cut), and whether it was cut to the policy's ``body_max``."""
        if not body:
            return headers, body, False
        decoded = decode_body(headers, body)
        data = decoded.body
        keep = self.policy.body_max
        cut = bool(keep) and len(data) > keep and decoded.final
        limit = keep if cut else None
        kept = data[:limit]
        new: bytes | None = None
        if kept.lstrip()[:1] in {b"{", b"["}:
            # Names come before their values: with none in the part kept, no secret is in it.
            if not self._clean(kept):
                try:
                    document = orjson.loads(data)
                except orjson.JSONDecodeError:
                    new = self._text(kept)
                else:
                    masked, hit = self.value(document, ())
                    if hit:
                        new = orjson.dumps(masked)[:limit]
        elif form and b"=" in kept:
            try:
                text = kept.decode("ascii")
            except UnicodeDecodeError:
                text = ""
            if text:
                masked_form = self.query(text)
                new = masked_form.encode() if masked_form != text else None
        else:
            new = self._text(kept)
        if new is None and not cut:
            return headers, body, False
        stored = tuple((k, v) for k, v in decoded.headers if k.lower() != "content-length")
        return stored, kept if new is None else new, cut

    def _text(self, data: bytes) -> bytes | None:
        """Mask ``"name": value`` pairs in JSON-ish text that does not parse (cut or broken)."""
        if self._name_re is None:
            return None
        text = data.decode("utf-8", errors="replace")
        replaced = self._name_re.sub(
            lambda m: m.group(1) + orjson.dumps(self.policy.mask(m.group(2))).decode(), text
        )
        return replaced.encode() if replaced != text else None

    # --- objects ----------------------------------------------------------------------------

    def request(self, request: CapturedRequest, full: bool) -> CapturedRequest:
        headers = self.headers(request.headers)
        body = request.body
        if full:
            form = "x-www-form-urlencoded" in (
                next((v for k, v in request.headers if k.lower() == "content-type"), "").lower()
            )
            headers, body, _ = self.body(headers, body, form=form)
        return replace(request, headers=headers, query=self.query(request.query), body=body)

    def outcome(self, outcome: Outcome, full: bool) -> Outcome:
        if not isinstance(outcome, CapturedResponse):
            return outcome
        headers = self.headers(outcome.headers)
        body = outcome.body
        cut = False
        if full:
            headers, body, cut = self.body(headers, body)
        if headers is outcome.headers and body is outcome.body:
            return outcome
        return replace(outcome, headers=headers, body=body, truncated=outcome.truncated or cut)

    def difference(self, difference: Difference) -> Difference:
        pointer = difference.pointer
        if pointer.startswith("/headers/"):
            name = _unescape(pointer.removeprefix("/headers/")).lower()
            if name not in self.policy.headers:
                return difference
            return replace(
                difference,
                primary=self._header_diff_value(name, difference.primary),
                shadow=self._header_diff_value(name, difference.shadow),
            )
        if difference.kind in {DiffKind.TEXT, DiffKind.UNPARSEABLE}:
            primary, hit_p = self._text_value(difference.primary)
            shadow, hit_s = self._text_value(difference.shadow)
        else:
            path = tuple(_unescape(s) for s in pointer.split("/")[1:]) if pointer else ()
            primary, hit_p = self.value(difference.primary, path)
            shadow, hit_s = self.value(difference.shadow, path)
        if not (hit_p or hit_s):
            return difference
        return replace(difference, primary=primary, shadow=shadow)

    def _text_value(self, value: Any) -> tuple[Any, bool]:
        if not isinstance(value, str):
            return value, False
        masked = self._text(value.encode())
        return (masked.decode(), True) if masked is not None else (value, False)

    def _header_diff_value(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return self.header_value(name, value)
        return self.policy.mask(value)


def _cookie_pair(pair: str, mask: Any) -> str:
    name, eq, value = pair.partition("=")
    return f"{name}={mask(value)}" if eq else mask(pair)


def redact_comparison(
    comparison: Comparison, policy: RedactionPolicy, body_paths: tuple[str, ...] = ()
) -> Comparison:
    """``comparison`` with every secret ``policy`` (plus ``body_paths``) names masked.

    Pure. Bodies are redacted for mismatches and shadow errors, the verdicts whose bodies are
    stored; for the others only headers and query strings are (their bodies are never stored).
    """
    redactor = _Redactor(policy.with_body(body_paths) if body_paths else policy)
    full = comparison.verdict in _FULL_BODY_VERDICTS
    exchange = comparison.exchange
    redacted = Exchange(
        id=exchange.id,
        endpoint=exchange.endpoint,
        request=redactor.request(exchange.request, full),
        primary=redactor.outcome(exchange.primary, full),
        shadow=redactor.outcome(exchange.shadow, full),
    )
    return replace(
        comparison,
        exchange=redacted,
        differences=tuple(redactor.difference(d) for d in comparison.differences),
    )
