"""What each switch means for a request, how a change merges, and the stored form."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from shadowproxy.control.switches import (
    ENDPOINT_OVERRIDES_MAX,
    KEEP,
    Change,
    Switches,
    SwitchesError,
)
from shadowproxy.model import SkipReason


def overrides(**names: bool | None) -> MappingProxyType[str, bool | None]:
    return MappingProxyType(dict(names))


def test_kill_switch_stops_every_endpoint() -> None:
    """Killed: every endpoint is skipped as disabled, whatever its override says."""
    switches = Switches(killed=True, endpoints=MappingProxyType({"on_one": True}))
    assert [SkipReason.DISABLED, SkipReason.DISABLED] == [
        switches.skip_reason("on_one"),
        switches.skip_reason("other"),
    ]


def test_endpoint_off_skips_only_that_endpoint() -> None:
    """An endpoint switched off is skipped as rule_off; others are untouched."""
    switches = Switches(endpoints=MappingProxyType({"titles.list": False}))
    assert (SkipReason.RULE_OFF, None) == (
        switches.skip_reason("titles.list"),
        switches.skip_reason("titles.one"),
    )


@pytest.mark.parametrize(
    ("override", "rule_mirror", "expected"),
    [
        (None, None, None),
        (None, False, False),
        (None, True, True),
        (False, None, False),
        (False, True, False),
        (True, False, None),  # on: safe methods mirror again despite the rule
        (True, None, None),  # on never unlocks unsafe methods (that needs mirror: true)
        (True, True, True),
    ],
)
def test_override_combines_with_the_rule(
    override: bool | None, rule_mirror: bool | None, expected: bool | None
) -> None:
    """Off wins; on lifts a rule's off for safe methods only; no override leaves the rule."""
    endpoints = {} if override is None else {"e": override}
    switches = Switches(endpoints=MappingProxyType(endpoints))
    assert expected == switches.rule_mirror("e", rule_mirror)


def test_sample_override_replaces_the_setting_not_the_rule() -> None:
    """Rule sample > override > --sample."""
    assert 80.0 == Switches().sample_percent(80.0, None)
    assert 5.0 == Switches(sample=5.0).sample_percent(80.0, None)
    assert 50.0 == Switches(sample=5.0).sample_percent(80.0, 50.0)


def test_rate_override_replaces_the_setting() -> None:
    """None keeps --shadow-rps; a number (0 = no cap) replaces it."""
    assert (30.0, 10.0, 0.0) == (
        Switches().rate(30.0),
        Switches(shadow_rps=10.0).rate(30.0),
        Switches(shadow_rps=0.0).rate(30.0),
    )


def test_change_applies_only_what_it_names() -> None:
    """KEEP fields stay, None clears, endpoint None removes an override; version +1."""
    before = Switches(
        killed=True,
        sample=5.0,
        shadow_rps=7.0,
        endpoints=MappingProxyType({"a": False, "b": True}),
        version=3,
        updated_at=1.0,
    )

    after = Change(sample=None, endpoints=overrides(a=None, c=False)).apply(before, now=2.0)

    assert (
        Switches(
            killed=True,
            sample=None,
            shadow_rps=7.0,
            endpoints=MappingProxyType({"b": True, "c": False}),
            version=4,
            updated_at=2.0,
        ).to_dict()
        == after.to_dict()
    )
    assert Change().empty
    assert not Change(killed=False).empty


def test_json_round_trip() -> None:
    """What is stored and published decodes to the same switches."""
    switches = Switches(
        killed=True,
        sample=12.5,
        shadow_rps=0.0,
        endpoints=MappingProxyType({"GET /titles/{id}": False}),
        version=7,
        updated_at=1.5e9,
    )
    assert switches.to_dict() == Switches.from_json(switches.to_json()).to_dict()
    assert Switches().to_dict() == Switches.from_json(b"{}").to_dict()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"nope", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"version": -1}', "version"),
        (b'{"version": 1.5}', "version"),
        (b'{"updated_at": "x"}', "updated_at"),
        (b'{"endpoints": {"a": null}}', "true or false"),
        (b'{"sample": 101}', "sample"),
    ],
)
def test_bad_stored_state_is_refused(raw: bytes, fragment: str) -> None:
    """A stored state that is not ours is an error naming what is wrong, never a guess."""
    with pytest.raises(SwitchesError, match=fragment):
        Switches.from_json(raw)


def test_unknown_stored_fields_are_ignored() -> None:
    """A field written by a newer version does not make an older proxy drop the whole state."""
    assert Switches(killed=True, version=2).to_dict() == (
        Switches.from_json(b'{"version": 2, "killed": true, "future": {"x": 1}}').to_dict()
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"killed": 1},
        {"sample": -0.1},
        {"sample": float("nan")},
        {"shadow_rps": float("inf")},
        {"endpoints": overrides(**{"": True})},
    ],
)
def test_change_validates_on_construction(kwargs: dict[str, object]) -> None:
    """A bad value cannot even be built into a Change."""
    with pytest.raises(SwitchesError):
        Change(**kwargs)  # type: ignore[arg-type]


def test_endpoint_overrides_are_capped() -> None:
    """The state travels whole on every change, so the number of overrides is bounded."""
    full = Switches(
        endpoints=MappingProxyType({f"e{n}": False for n in range(ENDPOINT_OVERRIDES_MAX)})
    )
    with pytest.raises(SwitchesError, match="too many endpoint overrides"):
        Change(endpoints=overrides(extra=True)).apply(full)
    assert ENDPOINT_OVERRIDES_MAX == len(Change(endpoints=overrides(e0=True)).apply(full).endpoints)


def test_keep_is_the_default_of_every_field() -> None:
    """A Change() changes nothing but the version."""
    assert (KEEP, KEEP, KEEP) == (Change().killed, Change().sample, Change().shadow_rps)
    assert (
        Switches(version=1, updated_at=3.0).to_dict()
        == Change().apply(Switches(), now=3.0).to_dict()
    )
