"""The rule that would silence a group: what "mark expected" hands back, ready to paste.

A group is defined by its (template, kind) pairs on one endpoint. Body differences are silenced by
``ignore:`` of their templates; header differences by dropping the header from the compared
``headers:``; a status difference cannot be ignored by a path (the snippet says so in a comment).
"""

from __future__ import annotations

import re

import yaml

from shadowproxy.store.contract import Group

_AUTO_ENDPOINT = re.compile(r"([A-Z]+) (/\S*)")


def silencing_rule(group: Group, *, rule_exists: bool) -> str:
    """A YAML fragment for the rule file's ``endpoints:`` list.

    ``rule_exists``: the endpoint is a named rule already; the snippet then names it (merge the
    ``ignore`` entries into it). Otherwise an auto-templated endpoint (``GET /v3/title/{id}``)
    gets a new rule matching its method and path.
    """
    body = sorted({t for t, kind in group.signature if kind not in {"status", "header"}})
    headers = sorted(
        {t.removeprefix("/headers/") for t, kind in group.signature if kind == "header"}
    )
    status = any(kind == "status" for _, kind in group.signature)
    rule: dict[str, object] = {"name": group.endpoint}
    auto = _AUTO_ENDPOINT.fullmatch(group.endpoint)
    if not rule_exists and auto:
        rule["match"] = {"method": auto.group(1), "path": auto.group(2)}
    if body:
        rule["ignore"] = [template or "" for template in body]
    comments = [f"# silences group {group.fingerprint} on {_one_line(group.endpoint)}"]
    if rule_exists:
        comments.append("# merge into the existing rule of this name")
    elif not auto:
        comments.append("# add a match: {method: ..., path: ...} for this endpoint")
    if "" in body:
        comments.append('# "" ignores the whole body: consider a narrower path')
    if headers:
        comments.append(
            "# stop comparing these headers (leave them out of `headers:`): " + ", ".join(headers)
        )
    if status:
        comments.append("# a status code difference cannot be ignored by path")
    document = yaml.safe_dump(
        {"endpoints": [rule]}, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return "\n".join(comments) + "\n" + document


def _one_line(text: str) -> str:
    return " ".join(text.split())
