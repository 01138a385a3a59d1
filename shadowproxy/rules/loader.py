"""Reading a rule file into a :class:`~shadowproxy.rules.ruleset.Ruleset`, or failing clearly.

The YAML is composed into nodes first, so every value keeps its line and column; each key is
checked against the keys allowed where it stands, and a typo gets the nearest allowed key as a
suggestion. Everything is compiled here, once: patterns, regexes, value rules, the path matcher.

Exceptions::

    ValueError
    └── RulesError      the rule file is unreadable or invalid; the message says where and why
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shadowproxy.rules.paths import PathRule, Pattern, Unordered, compile_matcher, parse_pattern
from shadowproxy.rules.ruleset import (
    DEFAULT_RULES,
    Condition,
    Endpoint,
    EndpointMatch,
    EndpointRules,
    HeaderRule,
    Ruleset,
    compile_path,
)
from shadowproxy.rules.transform import TransformKind, TransformOp
from shadowproxy.rules.values import (
    Coercion,
    Equivalence,
    Normalizer,
    TimestampRule,
    Tolerance,
    canonical,
)

BUILTIN_VERSION = hashlib.sha256(b"shadowproxy builtin rules v1").hexdigest()[:12]
"""The ruleset version recorded when no rule file is given."""

TOP_KEYS = ("version", "defaults", "endpoints")
PATH_RULE_KEYS = (
    "ignore",
    "critical",
    "unordered",
    "tolerance",
    "coerce",
    "equivalent",
    "normalize",
    "timestamps",
)
SETTING_KEYS = ("numbers", "headers", "status", "transform", "mirror", "sample", "redact")
RULE_KEYS = PATH_RULE_KEYS + SETTING_KEYS
"""Keys allowed in ``defaults`` and in each endpoint (besides ``name`` and ``match``)."""
ENDPOINT_KEYS = ("name", "match", *RULE_KEYS)
MATCH_KEYS = ("method", "path", "query", "headers")
NORMALIZE_KEYS = ("regex", "replace", "trim", "casefold", "nfc")
TOLERANCE_KEYS = ("abs", "rel")
UNORDERED_KEYS = ("key",)
TIMESTAMP_KEYS = ("tolerance_s",)
NUMBERS_KEYS = ("int_float_equal",)
STATUS_KEYS = ("equivalent",)
TRANSFORM_SIDES = ("primary", "shadow")
TRANSFORM_OPS = ("drop", "rename", "move")
RENAME_KEYS = ("path", "to")
MOVE_KEYS = ("from", "to")
HEADER_KEYS = ("name", "normalize")
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT")
MISSING_WORD = "missing"
"""In ``equivalent``, this bare word stands for an absent key."""


class RulesError(ValueError):
    """An unreadable or invalid rule file. ``str()`` reads ``file:line:column: rule: problem``."""

    def __init__(
        self, message: str, *, source: str = "", line: int = 0, column: int = 0, rule: str = ""
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.rule = rule
        self.problem = message
        where = source
        if line:
            where += f":{line}:{column}"
        parts = [p for p in (where, rule, message) if p]
        super().__init__(": ".join(parts))


def suggest(word: str, allowed: tuple[str, ...]) -> str:
    """`` (did you mean "x"?)`` for the allowed word nearest ``word``, or ``""``."""
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


@dataclass(slots=True)
class _Reader:
    """Turns YAML nodes into values, raising :class:`RulesError` with the node's position."""

    source: str
    constructor: SafeConstructor
    rule: str = ""

    def fail(self, node: Node, message: str) -> RulesError:
        mark = node.start_mark
        return RulesError(
            message, source=self.source, line=mark.line + 1, column=mark.column + 1, rule=self.rule
        )

    def value(self, node: Node) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def mapping(
        self, node: Node, what: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, tuple[Node, Node]]:
        """``{key: (key node, value node)}``; keys checked against ``allowed`` when given."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        # YAML merge keys (``<<: *shared``) let endpoints share a block of rules.
        self.constructor.flatten_mapping(node)
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, f"{what}: keys must be strings, not {key!r}")
            if key in out:
                raise self.fail(key_node, f'{what}: "{key}" is given twice')
            out[key] = (key_node, value_node)
        if allowed is not None:
            self.check_keys(out, what, allowed)
        return out

    def check_keys(
        self, mapping: dict[str, tuple[Node, Node]], what: str, allowed: tuple[str, ...]
    ) -> None:
        """Fail on the first key not in ``allowed``, suggesting the nearest allowed key."""
        for key, (key_node, _) in mapping.items():
            if key not in allowed:
                raise self.fail(
                    key_node,
                    f'unknown key "{key}" in {what}{suggest(key, allowed)}; '
                    f"allowed: {', '.join(allowed)}",
                )

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def string(self, node: Node, what: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a string, not {value!r}")
        return value

    def boolean(self, node: Node, what: str) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false, not {value!r}")
        return value

    def number(self, node: Node, what: str, low: float = 0.0, high: float = math.inf) -> float:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, f"{what} must be a number, not {value!r}")
        if not (low <= value <= high) or not math.isfinite(value):
            bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
            raise self.fail(node, f"{what} must be {bound}, not {value!r}")
        return float(value)

    def strings(self, node: Node, what: str) -> list[tuple[Node, str]]:
        """A list of strings (a single string counts as a list of one)."""
        if isinstance(node, ScalarNode):
            return [(node, self.string(node, what))]
        return [(item, self.string(item, f"{what} entry")) for item in self.sequence(node, what)]

    def pattern(self, node: Node, what: str) -> Pattern:
        text = self.string(node, what)
        try:
            return parse_pattern(text)
        except ValueError:
            raise self.fail(
                node, f'{what}: "{text}" is not a path: write a JSON Pointer such as /list/*/id'
            ) from None

    def patterned(self, node: Node, what: str) -> list[tuple[Node, Pattern, Node | None]]:
        """Entries of a rule keyed by path: a mapping ``path: options`` or a list of paths."""
        if isinstance(node, SequenceNode):
            return [(item, self.pattern(item, f"{what} path"), None) for item in node.value]
        return [
            (key_node, self.pattern(key_node, f"{what} path"), value_node)
            for key_node, value_node in self.mapping(node, what).values()
        ]


def _normalizers(reader: _Reader, node: Node, what: str) -> tuple[Normalizer, ...]:
    items = reader.sequence(node, what) if isinstance(node, SequenceNode) else [node]
    out = []
    for item in items:
        spec = reader.mapping(item, what, NORMALIZE_KEYS)
        pattern = None
        if "regex" in spec:
            text = reader.string(spec["regex"][1], f"{what}: regex")
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise reader.fail(spec["regex"][1], f"{what}: bad regex {text!r}: {exc}") from None
        replace = reader.string(spec["replace"][1], f"{what}: replace") if "replace" in spec else ""
        if "replace" in spec and pattern is None:
            raise reader.fail(spec["replace"][0], f"{what}: replace needs a regex")
        flags = {
            key: reader.boolean(spec[key][1], f"{what}: {key}")
            for key in ("trim", "casefold", "nfc")
            if key in spec
        }
        out.append(Normalizer(pattern=pattern, replace=replace, **flags))
    return tuple(out)


def _equivalence(reader: _Reader, node: Node, what: str) -> Equivalence:
    items = reader.sequence(node, what)
    groups = items if items and all(isinstance(i, SequenceNode) for i in items) else [node]
    classes = []
    for group in groups:
        values = []
        for item in reader.sequence(group, what):
            value = reader.value(item)
            if isinstance(value, dict | list):
                raise reader.fail(item, f"{what}: values must be scalars, not {value!r}")
            is_missing = (
                isinstance(item, ScalarNode) and item.style is None and value == MISSING_WORD
            )
            values.append(("missing",) if is_missing else canonical(value))
        if len(values) < 2:
            raise reader.fail(group, f"{what}: a class needs at least two values")
        classes.append(frozenset(values))
    return Equivalence(classes=tuple(classes))


def _path_rules(
    reader: _Reader, block: dict[str, tuple[Node, Node]]
) -> list[tuple[Pattern, PathRule]]:
    spec: list[tuple[Pattern, PathRule]] = []
    if "ignore" in block:
        for item, _ in reader.strings(block["ignore"][1], "ignore"):
            spec.append((reader.pattern(item, "ignore"), PathRule(ignore=True)))
    if "critical" in block:
        for item, _ in reader.strings(block["critical"][1], "critical"):
            spec.append((reader.pattern(item, "critical"), PathRule(critical=True)))
    if "unordered" in block:
        for _, pattern, opts in reader.patterned(block["unordered"][1], "unordered"):
            keys: tuple[str, ...] = ()
            if opts is not None and not (
                isinstance(opts, ScalarNode) and reader.value(opts) is None
            ):
                options = reader.mapping(opts, "unordered options", UNORDERED_KEYS)
                if "key" in options:
                    keys = tuple(k for _, k in reader.strings(options["key"][1], "unordered key"))
            spec.append((pattern, PathRule(unordered=Unordered(keys=keys))))
    if "tolerance" in block:
        for key_node, pattern, opts in reader.patterned(block["tolerance"][1], "tolerance"):
            if opts is None:
                raise reader.fail(key_node, "tolerance: give each path {abs: N} or {rel: N}")
            if isinstance(opts, ScalarNode):
                tol = Tolerance(abs=reader.number(opts, "tolerance"))
            else:
                options = reader.mapping(opts, "tolerance options", TOLERANCE_KEYS)
                tol = Tolerance(
                    abs=reader.number(options["abs"][1], "tolerance abs")
                    if "abs" in options
                    else 0.0,
                    rel=reader.number(options["rel"][1], "tolerance rel")
                    if "rel" in options
                    else 0.0,
                )
            spec.append((pattern, PathRule(tolerance=tol)))
    if "coerce" in block:
        choices = tuple(c.value for c in Coercion)
        for key_node, pattern, opts in reader.patterned(block["coerce"][1], "coerce"):
            if opts is None:
                raise reader.fail(key_node, f"coerce: give each path a type: {', '.join(choices)}")
            target = reader.string(opts, "coerce type")
            if target not in choices:
                raise reader.fail(
                    opts,
                    f'coerce: unknown type "{target}"{suggest(target, choices)}; '
                    f"allowed: {', '.join(choices)}",
                )
            spec.append((pattern, PathRule(coerce=Coercion(target))))
    if "equivalent" in block:
        for key_node, pattern, opts in reader.patterned(block["equivalent"][1], "equivalent"):
            if opts is None:
                raise reader.fail(key_node, "equivalent: give each path a list of values")
            spec.append((pattern, PathRule(equivalent=_equivalence(reader, opts, "equivalent"))))
    if "normalize" in block:
        for key_node, pattern, opts in reader.patterned(block["normalize"][1], "normalize"):
            if opts is None:
                raise reader.fail(key_node, "normalize: give each path {regex, replace, trim, ...}")
            spec.append((pattern, PathRule(normalize=_normalizers(reader, opts, "normalize"))))
    if "timestamps" in block:
        for _, pattern, opts in reader.patterned(block["timestamps"][1], "timestamps"):
            tolerance = 0.0
            if opts is not None and isinstance(opts, ScalarNode):
                if reader.value(opts) is not None:
                    tolerance = reader.number(opts, "timestamps tolerance")
            elif opts is not None:
                options = reader.mapping(opts, "timestamps options", TIMESTAMP_KEYS)
                if "tolerance_s" in options:
                    tolerance = reader.number(options["tolerance_s"][1], "tolerance_s")
            spec.append((pattern, PathRule(timestamp=TimestampRule(tolerance_s=tolerance))))
    return spec


def _transform_ops(reader: _Reader, node: Node, what: str) -> tuple[TransformOp, ...]:
    ops = []
    for item in reader.sequence(node, what):
        spec = reader.mapping(item, f"{what} step", TRANSFORM_OPS)
        if len(spec) != 1:
            raise reader.fail(item, f"{what}: each step is one of: {', '.join(TRANSFORM_OPS)}")
        ((kind, (_, value)),) = spec.items()
        if kind == "drop":
            ops.append(TransformOp(TransformKind.DROP, reader.pattern(value, "drop")))
        elif kind == "rename":
            opts = reader.mapping(value, "rename", RENAME_KEYS)
            for needed in RENAME_KEYS:
                if needed not in opts:
                    raise reader.fail(value, f'rename needs "{needed}"')
            ops.append(
                TransformOp(
                    TransformKind.RENAME,
                    reader.pattern(opts["path"][1], "rename path"),
                    to=reader.string(opts["to"][1], "rename to"),
                )
            )
        else:
            opts = reader.mapping(value, "move", MOVE_KEYS)
            for needed in MOVE_KEYS:
                if needed not in opts:
                    raise reader.fail(value, f'move needs "{needed}"')
            source = reader.pattern(opts["from"][1], "move from")
            target = reader.pattern(opts["to"][1], "move to")
            if not target:
                raise reader.fail(opts["to"][1], "move: cannot move onto the whole document")
            ops.append(TransformOp(TransformKind.MOVE, source, target=target))
    return tuple(ops)


def _headers(reader: _Reader, node: Node) -> tuple[HeaderRule, ...]:
    out = []
    for item in reader.sequence(node, "headers"):
        if isinstance(item, ScalarNode):
            out.append(HeaderRule(reader.string(item, "header name").lower()))
            continue
        spec = reader.mapping(item, "header", HEADER_KEYS)
        if "name" not in spec:
            raise reader.fail(item, 'a header entry needs "name"')
        normalize = (
            _normalizers(reader, spec["normalize"][1], "header normalize")
            if "normalize" in spec
            else ()
        )
        out.append(HeaderRule(reader.string(spec["name"][1], "header name").lower(), normalize))
    return tuple(out)


def _status(reader: _Reader, node: Node) -> tuple[frozenset[int], ...]:
    spec = reader.mapping(node, "status", STATUS_KEYS)
    if "equivalent" not in spec:
        return ()
    classes = []
    for group in reader.sequence(spec["equivalent"][1], "status equivalent"):
        codes = []
        for item in reader.sequence(group, "status class"):
            code = reader.value(item)
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise reader.fail(item, f"status codes are integers 100..599, not {code!r}")
            codes.append(code)
        classes.append(frozenset(codes))
    return tuple(classes)


@dataclass(slots=True)
class _Block:
    """One rules block (the defaults or an endpoint) before merging with the defaults."""

    spec: list[tuple[Pattern, PathRule]]
    settings: dict[str, Any]


def _block(reader: _Reader, block: dict[str, tuple[Node, Node]]) -> _Block:
    settings: dict[str, Any] = {}
    if "numbers" in block:
        numbers = reader.mapping(block["numbers"][1], "numbers", NUMBERS_KEYS)
        if "int_float_equal" in numbers:
            settings["int_float_equal"] = reader.boolean(
                numbers["int_float_equal"][1], "int_float_equal"
            )
    if "headers" in block:
        settings["headers"] = _headers(reader, block["headers"][1])
    if "status" in block:
        settings["status_classes"] = _status(reader, block["status"][1])
    if "transform" in block:
        sides = reader.mapping(block["transform"][1], "transform", TRANSFORM_SIDES)
        for side in TRANSFORM_SIDES:
            if side in sides:
                settings[f"transform_{side}"] = _transform_ops(
                    reader, sides[side][1], f"transform {side}"
                )
    if "mirror" in block:
        settings["mirror"] = reader.boolean(block["mirror"][1], "mirror")
    if "sample" in block:
        settings["sample"] = reader.number(block["sample"][1], "sample", 0.0, 100.0)
    if "redact" in block:
        settings["redact"] = tuple(s for _, s in reader.strings(block["redact"][1], "redact"))
    return _Block(spec=_path_rules(reader, block), settings=settings)


def _match(reader: _Reader, node: Node) -> EndpointMatch:
    spec = reader.mapping(node, "match", MATCH_KEYS)
    if "path" not in spec:
        raise reader.fail(node, 'match needs a "path" (for example /v3/title/{id} or /**)')
    path = reader.string(spec["path"][1], "match path")
    if not path.startswith("/"):
        raise reader.fail(spec["path"][1], f'match path must start with "/": {path!r}')
    methods = None
    if "method" in spec:
        names = []
        for item, name in reader.strings(spec["method"][1], "method"):
            upper = name.upper()
            if upper not in METHODS:
                raise reader.fail(item, f'unknown method "{name}"{suggest(upper, METHODS)}')
            names.append(upper)
        methods = frozenset(names)

    def conditions(key: str) -> tuple[Condition, ...]:
        if key not in spec:
            return ()
        out = []
        for name, (_, value_node) in reader.mapping(spec[key][1], f"match {key}").items():
            value = reader.value(value_node)
            if isinstance(value, dict | list):
                raise reader.fail(value_node, f"match {key} {name}: a value, * or null")
            wanted = (
                None
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            out.append(Condition(name.lower() if key == "headers" else name, wanted))
        return tuple(out)

    return EndpointMatch(
        methods=methods,
        path=path,
        regex=compile_path(path),
        query=conditions("query"),
        headers=conditions("headers"),
    )


def _default_name(match: EndpointMatch) -> str | None:
    # A pattern with wildcards covers many endpoints: leave it unnamed so the proxy auto-templates.
    if "*" in match.path:
        return None
    methods = "|".join(sorted(match.methods)) if match.methods else "*"
    return f"{methods} {match.path}"


def _rules(name: str | None, own: _Block, defaults: _Block) -> EndpointRules:
    settings = {**defaults.settings, **own.settings}
    redact = tuple(
        dict.fromkeys((*defaults.settings.get("redact", ()), *own.settings.get("redact", ())))
    )
    settings["redact"] = redact
    # The endpoint's path rules come first, so on the same path they win over the defaults'.
    spec = tuple(own.spec + defaults.spec)
    return EndpointRules(name=name, matcher=compile_matcher(spec), **settings)


def parse_ruleset(text: str, source: Path | None = None) -> Ruleset:
    """The ruleset written in ``text`` (the content of ``source``, used in messages)."""
    label = str(source) if source is not None else "<rules>"
    reader = _Reader(source=label, constructor=SafeConstructor())
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise RulesError(
            f"not valid YAML: {exc.problem}",
            source=label,
            line=mark.line + 1 if mark else 0,
            column=mark.column + 1 if mark else 0,
        ) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}", source=label) from None
    if root is None:
        raise RulesError("the rule file is empty (it needs at least: version: 1)", source=label)
    top = reader.mapping(root, "the rule file")
    for key, (key_node, _) in top.items():
        # ``x-...`` keys are free, as in Compose files: a place for YAML anchors to share.
        if key not in TOP_KEYS and not key.startswith("x-"):
            raise reader.fail(
                key_node,
                f'unknown key "{key}" in the rule file{suggest(key, TOP_KEYS)}; '
                f"allowed: {', '.join(TOP_KEYS)} and x-... keys for shared anchors",
            )
    if "version" not in top:
        raise reader.fail(root, 'the rule file needs "version: 1" at the top')
    version_node = top["version"][1]
    if reader.value(version_node) != 1:
        raise reader.fail(
            version_node, f"unsupported version {reader.value(version_node)!r}; use 1"
        )

    reader.rule = "defaults"
    defaults = _Block([], {})
    if "defaults" in top and not _is_null(reader, top["defaults"][1]):
        defaults = _block(reader, reader.mapping(top["defaults"][1], "defaults", RULE_KEYS))
    endpoints = []
    if "endpoints" in top and not _is_null(reader, top["endpoints"][1]):
        for index, node in enumerate(reader.sequence(top["endpoints"][1], "endpoints")):
            reader.rule = f"endpoints[{index}]"
            block = reader.mapping(node, "an endpoint")
            name = reader.string(block["name"][1], "name") if "name" in block else None
            if name is not None:
                reader.rule = f'endpoint "{name}"'
            reader.check_keys(block, "an endpoint", ENDPOINT_KEYS)
            if "match" not in block:
                raise reader.fail(node, 'an endpoint needs "match" (method and path)')
            match = _match(reader, block["match"][1])
            rules = _rules(name or _default_name(match), _block(reader, block), defaults)
            endpoints.append(Endpoint(match=match, rules=rules, line=node.start_mark.line + 1))
    default_rules = (
        _rules(None, defaults, _Block([], {}))
        if defaults.spec or defaults.settings
        else DEFAULT_RULES
    )
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Ruleset(
        version=version, source=source, endpoints=tuple(endpoints), defaults=default_rules
    )


def _is_null(reader: _Reader, node: Node) -> bool:
    return isinstance(node, ScalarNode) and reader.value(node) is None


def load_ruleset(path: Path | None) -> Ruleset:
    """The ruleset in ``path``; ``None`` gives the built-in defaults (exact comparison, headers:
    content-type). Raises :class:`RulesError` for a missing, unreadable or invalid file."""
    if path is None:
        return Ruleset(version=BUILTIN_VERSION, source=None)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesError(
            f"cannot read the rule file: {exc.strerror or exc}", source=str(path)
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"not UTF-8 text (byte {exc.start})", source=str(path)) from None
    return parse_ruleset(text, path)
