"""What a ruleset will do, in words: the text ``shadowproxy rules check`` prints, with warnings
about endpoints that can never match."""

from __future__ import annotations

from shadowproxy.rules.paths import PathRule, format_pattern
from shadowproxy.rules.ruleset import Endpoint, EndpointRules, Ruleset
from shadowproxy.rules.values import Equivalence, Normalizer


def _equivalence(eq: Equivalence) -> str:
    classes = []
    for cls in eq.classes:
        shown = sorted("missing" if c == ("missing",) else _canonical_text(c) for c in cls)
        classes.append("{" + ", ".join(shown) + "}")
    return " and ".join(classes)


def _canonical_text(form: tuple[object, ...]) -> str:
    if form == ("null",):
        return "null"
    value = form[1]
    if form[0] == "string":
        return repr(value)
    if form[0] == "bool":
        return "true" if value else "false"
    return str(value)


def _normalizer(norm: Normalizer) -> str:
    steps = []
    if norm.nfc:
        steps.append("Unicode NFC")
    if norm.trim:
        steps.append("trim")
    if norm.pattern is not None:
        steps.append(f"replace regex {norm.pattern.pattern!r} with {norm.replace!r}")
    if norm.casefold:
        steps.append("case fold")
    return ", ".join(steps) or "nothing"


def describe_rule(rule: PathRule) -> str:
    """One path rule in words (``ignored``, ``matched by key id``, ``within ±0.01``...)."""
    parts = []
    if rule.ignore:
        parts.append("ignored")
    if rule.unordered is not None:
        keys = rule.unordered.keys
        parts.append(f"unordered, matched by key {'+'.join(keys)}" if keys else "a multiset")
    if rule.tolerance is not None:
        bounds = []
        if rule.tolerance.abs:
            bounds.append(f"±{rule.tolerance.abs:g}")
        if rule.tolerance.rel:
            bounds.append(f"±{rule.tolerance.rel * 100:g}%")
        parts.append("numbers within " + " or ".join(bounds or ["±0"]))
    if rule.coerce is not None:
        parts.append(f"both sides read as {rule.coerce}")
    if rule.equivalent is not None:
        parts.append("equal within " + _equivalence(rule.equivalent))
    if rule.normalize:
        parts.append(
            "strings normalised: " + "; then ".join(_normalizer(n) for n in rule.normalize)
        )
    if rule.timestamp is not None:
        parts.append(f"instants within {rule.timestamp.tolerance_s:g} s")
    if rule.critical:
        parts.append("critical")
    return ", ".join(parts)


def _rules_lines(rules: EndpointRules, defaults: EndpointRules | None = None) -> list[str]:
    mirror = {None: "default (GET, HEAD, OPTIONS only)", True: "yes", False: "no"}[rules.mirror]
    sample = "the global setting" if rules.sample is None else f"{rules.sample:g}%"
    lines = [f"    mirror: {mirror}; sample: {sample}"]
    headers = ", ".join(h.name for h in rules.headers) or "none"
    lines.append(f"    headers compared: {headers}")
    if not rules.int_float_equal:
        lines.append("    24 and 24.0 differ (int_float_equal: false)")
    for cls in rules.status_classes:
        lines.append(f"    status codes {', '.join(map(str, sorted(cls)))} count as equal")
    for side, ops in (("primary", rules.transform_primary), ("shadow", rules.transform_shadow)):
        for op in ops:
            lines.append(f"    before comparing, on the {side}: {op.describe()}")
    spec = rules.matcher.spec
    inherited = defaults.matcher.spec if defaults is not None else ()
    # An endpoint's path rules are its own followed by the defaults': list only its own.
    if inherited and spec[len(spec) - len(inherited) :] == inherited:
        spec = spec[: len(spec) - len(inherited)]
    for pattern, rule in spec:
        lines.append(f"    {format_pattern(pattern) or '(whole body)'}: {describe_rule(rule)}")
    if spec is not rules.matcher.spec:
        count = len(inherited)
        lines.append(f"    and the defaults' {count} path rule{'s' if count > 1 else ''} (below)")
    if rules.redact:
        lines.append(f"    redacted before storing: {', '.join(rules.redact)}")
    if not rules.matcher.spec:
        lines.append("    body compared exactly")
    return lines


def _match_text(endpoint: Endpoint) -> str:
    match = endpoint.match
    methods = "|".join(sorted(match.methods)) if match.methods else "any method"
    conditions = [f"{c.name}={'(absent)' if c.value is None else c.value}" for c in match.query]
    text = f"{methods} {match.path}"
    if conditions:
        text += " ?" + "&".join(conditions)
    for cond in match.headers:
        text += f" [{cond.name}: {'(absent)' if cond.value is None else cond.value}]"
    return text


def _covers(earlier: Endpoint, later: Endpoint) -> bool:
    """True when every request ``later`` matches is matched by ``earlier`` first (plain cases:
    the same path, or a ``/prefix/**`` pattern; no query or header conditions on ``earlier``)."""
    first, second = earlier.match, later.match
    if first.query or first.headers:
        return False
    if first.methods is not None and (
        second.methods is None or not second.methods <= first.methods
    ):
        return False
    if first.path == second.path:
        return True
    if first.path.endswith("/**"):
        prefix = first.path[: -len("/**")]
        return second.path == prefix or second.path.startswith(prefix + "/")
    return False


def warnings(ruleset: Ruleset) -> list[str]:
    """Problems that are not errors: endpoints an earlier endpoint always matches first."""
    found = []
    endpoints = ruleset.endpoints
    for index, later in enumerate(endpoints):
        for position, earlier in enumerate(endpoints[:index]):
            if _covers(earlier, later):
                found.append(
                    f"endpoint {index + 1} ({later.rules.name or _match_text(later)}, line "
                    f"{later.line}) never matches: endpoint {position + 1} "
                    f"({earlier.rules.name or _match_text(earlier)}, line {earlier.line}) takes "
                    "all its requests first"
                )
                break
    return found


def explain(ruleset: Ruleset) -> list[str]:
    """Lines describing, endpoint by endpoint in match order, what will be compared and how."""
    source = str(ruleset.source) if ruleset.source else "built-in rules"
    lines = [
        f"{source}: valid (version {ruleset.version}, {len(ruleset.endpoints)} endpoints; "
        "the first match wins)"
    ]
    for index, endpoint in enumerate(ruleset.endpoints, 1):
        name = endpoint.rules.name or "(unnamed: auto-templated paths)"
        line = f" line {endpoint.line}" if endpoint.line else ""
        lines.append("")
        lines.append(f"{index}. {name}: {_match_text(endpoint)}{line}")
        lines.extend(_rules_lines(endpoint.rules, ruleset.defaults))
    lines.append("")
    lines.append("Defaults (and any request no endpoint matches, under an auto-templated name):")
    lines.extend(_rules_lines(ruleset.defaults))
    problems = warnings(ruleset)
    if problems:
        lines.append("")
        lines.extend(f"warning: {problem}" for problem in problems)
    return lines
