"""Settings: flags beat environment beat config file; bad values say what and where."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shadowproxy.settings import HostPort, SettingsError, resolve

BACKENDS = {"primary": "http://127.0.0.1:3000", "shadow": "http://127.0.0.1:4000"}


def test_flag_beats_environment_beats_config_file(tmp_path: Path) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text("sample: 10\nshadow_timeout: 2\nqueue-size: 7\n", encoding="utf-8")
    settings = resolve(
        {**BACKENDS, "config": str(config), "sample": "50"},
        {"SHADOWPROXY_SAMPLE": "20", "SHADOWPROXY_SHADOW_TIMEOUT": "3"},
    )
    assert (50.0, 3.0, 7) == (settings.sample, settings.shadow_timeout, settings.queue_size)


def test_environment_alone_configures_everything() -> None:
    settings = resolve(
        {},
        {
            "SHADOWPROXY_PRIMARY": "https://legacy.internal:8443/",
            "SHADOWPROXY_SHADOW": "http://rewrite:8000",
            "SHADOWPROXY_LISTEN": ":8080",
            "SHADOWPROXY_MIRROR_BODY_MAX": "64k",
            "SHADOWPROXY_REDACT_HEADERS": "X-Session, X-Api-Token",
        },
    )
    assert "https://legacy.internal:8443" == settings.primary
    assert HostPort("0.0.0.0", 8080) == settings.listen
    assert 65536 == settings.mirror_body_max
    assert ("x-session", "x-api-token") == settings.redact_headers


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"primary": "legacy:3000"},
            "--primary: expected an http:// or https:// URL with a host, got 'legacy:3000'",
        ),
        ({"listen": "127.0.0.1:99999"}, "--listen: port must be 0-65535, got 99999"),
        ({"sample": "150"}, "--sample: must be a percentage from 0 to 100, got 150"),
        ({"shadow_timeout": "-1"}, "--shadow-timeout: must be greater than 0, got -1"),
        (
            {"admin_listen": "0.0.0.0:9090"},
            "--admin-listen 0.0.0.0:9090 is not loopback: set --admin-token",
        ),
    ],
)
def test_bad_values_name_the_option(given: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve({**BACKENDS, **given}, {})
    assert str(caught.value).startswith(message)


def test_missing_backend_is_named() -> None:
    with pytest.raises(
        SettingsError, match=r"^--shadow is required \(or set SHADOWPROXY_SHADOW\)$"
    ):
        resolve({"primary": "http://a"}, {})


def test_bad_value_in_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^SHADOWPROXY_QUEUE_SIZE: "):
        resolve(BACKENDS, {"SHADOWPROXY_QUEUE_SIZE": "many"})


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sampel: 10\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"c\.yaml: unknown option 'sampel'"):
        resolve({**BACKENDS, "config": str(config)}, {})


def test_workers_auto_is_one_per_usable_cpu(tmp_path: Path) -> None:
    """``auto`` counts the CPUs this process may run on (its affinity), from a flag, the
    environment or the config file alike; a number is taken as given."""
    cpus = len(os.sched_getaffinity(0))
    config = tmp_path / "shadowproxy.yaml"
    config.write_text("workers: auto\n", encoding="utf-8")
    assert [cpus, cpus, cpus, 3] == [
        resolve({**BACKENDS, "workers": "auto"}, {}).workers,
        resolve(BACKENDS, {"SHADOWPROXY_WORKERS": "AUTO"}).workers,
        resolve({**BACKENDS, "config": str(config)}, {}).workers,
        resolve({**BACKENDS, "workers": "3"}, {}).workers,
    ]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0", "--workers: must be greater than 0, got 0"),
        ("many", "--workers: expected a number or auto, got 'many'"),
    ],
)
def test_workers_other_than_a_number_or_auto_are_refused(given: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve({**BACKENDS, "workers": given}, {})
    assert str(caught.value).startswith(message)
