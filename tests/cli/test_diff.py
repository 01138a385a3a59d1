"""``shadowproxy diff``: exit codes, output formats and the JSON Patch round trip, through the
real command."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.cli import main
from tests.compare.test_differ import documents, mutate

TITLE = {
    "id": 9174,
    "names": {"ru": "Твоё имя", "en": "Your Name", "alternative": None},
    "genres": ["Драма", "Романтика"],
    "in_favorites": 24310,
    "updated": 1656280895,
}


def shadowproxy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowproxy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, doc: Any) -> Path:
    path.write_bytes(orjson.dumps(doc))
    return path


def test_exit_codes_equal_different_error(tmp_path: Path) -> None:
    """0 for equal documents, 1 for different ones, 2 for a file that is not JSON."""
    a = write(tmp_path / "a.json", TITLE)
    b = write(tmp_path / "b.json", {**TITLE, "in_favorites": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("<html>")
    assert 0 == shadowproxy("diff", a, a).returncode
    different = shadowproxy("diff", a, b)
    assert (1, "/in_favorites  value  24310 → 1\n") == (different.returncode, different.stdout)
    broken = shadowproxy("diff", a, bad)
    assert 2 == broken.returncode
    assert "bad.json: not valid JSON" in broken.stderr


def test_rules_and_endpoint_apply(tmp_path: Path) -> None:
    """With rules, an endpoint chosen by request line or by name masks its declared noise."""
    a = write(tmp_path / "a.json", {"list": [TITLE]})
    b = write(
        tmp_path / "b.json",
        {"list": [{**TITLE, "in_favorites": 1, "genres": ["Романтика", "Драма"]}]},
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\n"
        "endpoints:\n"
        "  - name: titles.list\n"
        "    match: {method: GET, path: /v3/title/list}\n"
        "    ignore: ['**/in_favorites']\n"
        "    unordered: {/list/*/genres: {}}\n"
    )
    assert 1 == shadowproxy("diff", a, b).returncode
    assert 0 == shadowproxy("diff", a, b, "--rules", rules, "--endpoint", "titles.list").returncode
    by_request = shadowproxy(
        "diff", a, b, "--rules", rules, "--endpoint", "GET /v3/title/list?page=2"
    )
    assert 0 == by_request.returncode
    unknown = shadowproxy("diff", a, b, "--rules", rules, "--endpoint", "titles.lsit")
    assert 2 == unknown.returncode
    assert "titles.list" in unknown.stderr


def test_invalid_rules_exit_2_with_location(tmp_path: Path) -> None:
    """A broken rule file is an error (2) whose message names file and line."""
    a = write(tmp_path / "a.json", TITLE)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefaults:\n  ignroe: [/a]\n")
    result = shadowproxy("diff", a, a, "--rules", rules)
    assert 2 == result.returncode
    assert f"{rules}:3:3" in result.stderr
    assert 'did you mean "ignore"' in result.stderr


def test_json_format_and_key_labels(tmp_path: Path) -> None:
    """``--format json`` lists differences with pointer, template, label, kind and values."""
    a = write(tmp_path / "a.json", {"list": [{"id": 1, "v": 1}, {"id": 2, "v": 2}]})
    b = write(tmp_path / "b.json", {"list": [{"id": 2, "v": 3}, {"id": 1, "v": 1}]})
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefaults: {unordered: {/list: {key: id}}}\n")
    result = shadowproxy("diff", a, b, "--rules", rules, "--format", "json")
    assert 1 == result.returncode
    assert {
        "equal": False,
        "differences": [
            {
                "pointer": "/list/1/v",
                "template": "/list/*/v",
                "label": "/list/[id=2]/v",
                "kind": "value",
                "primary": 2,
                "shadow": 3,
                "severity": "normal",
            }
        ],
    } == orjson.loads(result.stdout)
    text = shadowproxy("diff", a, b, "--rules", rules)
    assert text.stdout.startswith("/list/[id=2]/v  value  2 → 3")


def test_text_is_coloured_only_when_asked(tmp_path: Path) -> None:
    """Text output carries ANSI colours with --color always, none when piped by default."""
    a = write(tmp_path / "a.json", {"a": 1})
    b = write(tmp_path / "b.json", {"a": 2})
    assert "\x1b[" not in shadowproxy("diff", a, b).stdout
    assert "\x1b[31m1\x1b[0m" in shadowproxy("diff", a, b, "--color", "always").stdout


def run_in_process(*args: str | Path) -> tuple[int, bytes]:
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8")
    with contextlib.redirect_stdout(stream):
        code = main([str(a) for a in args])
        stream.flush()
    return code, buffer.getvalue()


def test_jsonpatch_subprocess_round_trip(tmp_path: Path) -> None:
    """The printed patch, applied to A with the jsonpatch package, yields B."""
    a_doc = {"list": [TITLE, {**TITLE, "id": 2}], "n": [1, 2, 3]}
    b_doc = {"list": [{**TITLE, "names": {"ru": "x"}}], "n": [0, 1, 3, 4], "new": {"k/~": True}}
    a = write(tmp_path / "a.json", a_doc)
    b = write(tmp_path / "b.json", b_doc)
    result = shadowproxy("diff", a, b, "--format", "jsonpatch")
    assert 1 == result.returncode
    assert b_doc == jsonpatch.apply_patch(a_doc, orjson.loads(result.stdout))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_jsonpatch_round_trip_on_generated_pairs(data: st.DataObject) -> None:
    """For generated pairs, the command's patch turns A into B and the exit code says whether
    they differ."""
    a_doc = data.draw(documents)
    b_doc = mutate(data, a_doc)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a = write(folder / "a.json", a_doc)
        b = write(folder / "b.json", b_doc)
        code, out = run_in_process("diff", a, b, "--format", "jsonpatch")
    patched = jsonpatch.apply_patch(orjson.loads(orjson.dumps(a_doc)), orjson.loads(out))
    same = orjson.dumps(a_doc, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b_doc, option=orjson.OPT_SORT_KEYS
    )
    assert (0 if same else 1) == code
    assert orjson.dumps(b_doc, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        patched, option=orjson.OPT_SORT_KEYS
    )
