"""Loading rule files: what valid files compile to, and errors that say where and why."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from shadowproxy.rules import BUILTIN_VERSION, RulesError, load_ruleset, loader, parse_ruleset

RULES_DIR = Path(__file__).parents[2] / "rules"


def error_of(text: str) -> RulesError:
    with pytest.raises(RulesError) as info:
        parse_ruleset(text, Path("api.yaml"))
    return info.value


def test_typo_names_file_line_column_rule_and_suggestion() -> None:
    """A misspelt key is reported with file, line, column, the endpoint and the nearest key."""
    error = error_of(
        "version: 1\n"
        "endpoints:\n"
        "  - name: titles.list\n"
        "    match: {method: GET, path: /v3/title/list}\n"
        "    ignroe: [/list/*/updated]\n"
    )
    assert ("api.yaml", 5, 5, 'endpoint "titles.list"') == (
        error.source,
        error.line,
        error.column,
        error.rule,
    )
    assert str(error).startswith('api.yaml:5:5: endpoint "titles.list": unknown key "ignroe"')
    assert 'did you mean "ignore"?' in str(error)


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("version: 2\n", 1, "unsupported version 2"),
        ("endpoints: []\n", 1, 'needs "version: 1"'),
        ("version: 1\nendpoint: []\n", 2, 'did you mean "endpoints"?'),
        ("version: 1\ndefaults: {tolerence: {}}\n", 2, 'did you mean "tolerance"?'),
        ("version: 1\ndefaults: {unordered: {/l: {keys: id}}}\n", 2, 'did you mean "key"?'),
        ("version: 1\ndefaults: {coerce: {/id: numbr}}\n", 2, 'did you mean "number"?'),
        ("version: 1\ndefaults: {ignore: [list/id]}\n", 2, "not a path"),
        ("version: 1\ndefaults: {normalize: {/a: {regex: '('}}}\n", 2, "bad regex"),
        ("version: 1\ndefaults: {sample: 150}\n", 2, "between 0 and 100"),
        ("version: 1\ndefaults: {mirror: maybe}\n", 2, "true or false"),
        ("version: 1\ndefaults: {status: {equivalent: [[200, 999]]}}\n", 2, "100..599"),
        ("version: 1\nendpoints:\n  - match: {method: GTE, path: /x}\n", 3, 'did you mean "GET"?'),
        ("version: 1\nendpoints:\n  - match: {path: x}\n", 3, 'must start with "/"'),
        ("version: 1\nendpoints:\n  - name: a\n", 3, 'needs "match"'),
        (
            "version: 1\nendpoints:\n  - {match: {path: /x}, ignore: [/a], ignore: [/b]}\n",
            3,
            "given twice",
        ),
        ("version: 1\ndefaults: {equivalent: {/a: [null]}}\n", 2, "at least two values"),
        (
            "version: 1\ndefaults: {transform: {primary: [{rename: {path: /a}}]}}\n",
            2,
            'rename needs "to"',
        ),
        ("version: 1\ndefaults: [\n", 3, "not valid YAML"),
    ],
)
def test_invalid_files_say_where_and_why(text: str, line: int, expected: str) -> None:
    """Each kind of mistake gives a message with its line and a precise reason."""
    error = error_of(text)
    assert line == error.line
    assert expected in str(error)


def test_empty_file_is_an_error() -> None:
    """An empty rule file is refused with a hint at the minimum content."""
    assert "empty" in str(error_of(""))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    """A missing file and a file that is not UTF-8 are errors naming the file."""
    with pytest.raises(RulesError, match="cannot read"):
        load_ruleset(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(RulesError, match="not UTF-8"):
        load_ruleset(bad)


def test_no_file_gives_builtin_defaults() -> None:
    """Without a file: exact comparison with Content-Type compared, and the builtin version."""
    ruleset = load_ruleset(None)
    rules = ruleset.resolve("GET", "/anything", {}, {})
    assert (BUILTIN_VERSION, None, ("content-type",), ()) == (
        ruleset.version,
        rules.name,
        tuple(h.name for h in rules.headers),
        rules.matcher.spec,
    )


def test_version_is_a_hash_of_the_content() -> None:
    """The same text gives the same version; any change gives another."""
    text = "version: 1\ndefaults: {ignore: [/a]}\n"
    assert parse_ruleset(text).version == parse_ruleset(text).version
    assert parse_ruleset(text).version != parse_ruleset(text + "# note\n").version


def test_endpoint_settings_override_defaults_and_path_rules_add_up() -> None:
    """An endpoint replaces the defaults' settings and adds its path rules before theirs."""
    ruleset = parse_ruleset(
        "version: 1\n"
        "defaults: {headers: [content-type, etag], sample: 50, ignore: [/a], redact: [token]}\n"
        "endpoints:\n"
        "  - match: {path: /x}\n"
        "    headers: [content-type]\n"
        "    ignore: [/b]\n"
        "    redact: [password]\n"
    )
    rules = ruleset.resolve("GET", "/x", {}, {})
    assert (("content-type",), 50.0, ("token", "password")) == (
        tuple(h.name for h in rules.headers),
        rules.sample,
        rules.redact,
    )
    assert ["/b", "/a"] == ["/" + p[0] for p, _ in rules.matcher.spec]


def test_shared_blocks_with_anchors() -> None:
    """``x-`` keys hold anchors that endpoints merge with ``<<``."""
    ruleset = parse_ruleset(
        "version: 1\n"
        "x-title: &title {ignore: [/updated]}\n"
        "endpoints:\n"
        "  - {<<: *title, name: a, match: {path: /a}}\n"
        "  - {<<: *title, name: b, match: {path: /b}, critical: [/id]}\n"
    )
    assert [1, 2] == [len(e.rules.matcher.spec) for e in ruleset.endpoints]


def test_every_example_rule_file_loads() -> None:
    """Every file shipped in rules/ is valid."""
    files = sorted(RULES_DIR.glob("*.yaml"))
    assert {"anilibria.yaml", "starter.yaml"} <= {f.name for f in files}
    for path in files:
        assert load_ruleset(path).endpoints, path


def test_schema_ships_and_knows_every_key() -> None:
    """The JSON Schema is in the package and names exactly the keys the loader accepts."""
    schema = json.loads(resources.files("shadowproxy.rules").joinpath("schema.json").read_text())
    assert set(loader.TOP_KEYS) == set(schema["properties"])
    assert set(loader.RULE_KEYS) == set(schema["$defs"]["rules"]["properties"])
    assert set(loader.ENDPOINT_KEYS) == set(schema["$defs"]["endpoint"]["properties"])
    match = schema["$defs"]["endpoint"]["properties"]["match"]["properties"]
    assert set(loader.MATCH_KEYS) == set(match)


def test_design_brief_example_loads() -> None:
    """The rule file sketched in the design brief is valid as written."""
    ruleset = parse_ruleset(
        "version: 1\n"
        "defaults:\n"
        "  headers: [content-type]\n"
        "  numbers: {int_float_equal: true}\n"
        "endpoints:\n"
        "  - name: titles.list\n"
        "    match: {method: GET, path: /api/anilibria/v1/titles}\n"
        '    ignore: [/pagination/took_ms, /list/*/updated, "**/in_favorites"]\n'
        "    unordered:\n"
        "      /list: {key: id}\n"
        "      /list/*/genres: {}\n"
        "    tolerance: {/list/*/rating: {abs: 0.01}}\n"
        '    equivalent: {/list/*/names/alternative: [null, "", missing]}\n'
        "    coerce: {/list/*/id: number}\n"
        '    normalize: {"/list/*/posters/**/url": {regex: "^https?://[^/]+", replace: ""}}\n'
        "    timestamps: {/list/*/updated_at: {tolerance_s: 2}}\n"
        "    critical: [/list/*/id, /list/*/names, /list/*/status]\n"
        "  - match: {method: [POST, PUT, PATCH, DELETE], path: '/**'}\n"
        "    mirror: false\n"
    )
    assert "titles.list" == ruleset.resolve("GET", "/api/anilibria/v1/titles", {}, {}).name
    assert ruleset.resolve("DELETE", "/api/anything", {}, {}).mirror is False
    assert 13 == len(ruleset.endpoints[0].rules.matcher.spec)
