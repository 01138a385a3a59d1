"""One typed settings object, read once from flags, ``SHADOWPROXY_*`` environment and a config file.

Precedence: command-line flag > environment variable > config file (YAML) > default. Every option
is declared once in :data:`OPTIONS`; the CLI's ``--help``, the environment names and the config file
keys are all derived from that table, so they cannot drift apart. Nothing else in the package reads
``os.environ``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

ENV_PREFIX = "SHADOWPROXY_"
T = TypeVar("T")


class SettingsError(ValueError):
    """A bad option value; the message says which option, where it came from and why."""


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``shadowproxy run`` needs. Field docs are the ``--help`` texts."""

    primary: str = ""
    shadow: str = ""
    listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8080))
    admin_listen: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9090))
    admin_token: str = ""
    rules: Path | None = None
    store: str = "sqlite:///shadowproxy.db"
    sample: float = 100.0
    primary_timeout: float = 30.0
    shadow_timeout: float = 5.0
    connect_timeout: float = 5.0
    shadow_max_in_flight: int = 64
    mirror_body_max: int = 1024 * 1024
    request_body_max: int = 100 * 1024 * 1024
    client_body_timeout: float = 60.0
    capture_max: int = 4 * 1024 * 1024
    queue_size: int = 1000
    queue_bytes_max: int = 32 * 1024 * 1024
    comparators: int = 1
    shadow_header: str = "X-Shadow-Request"
    tls_verify: bool = True
    endpoint_cap: int = 200
    store_body_max: int = 64 * 1024
    store_batch: int = 200
    store_flush_interval: float = 0.5
    store_buffer: int = 10_000
    spool_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    group_store_per_hour: int = 50
    retention_days: float = 14.0
    store_max_bytes: int = 1024 * 1024 * 1024
    redact_headers: tuple[str, ...] = ()
    redact_query: tuple[str, ...] = ()
    redact_hmac_key: str = ""
    log_level: str = "info"
    workers: int = 1
    control: str = ""
    queue: str = ""
    stream_maxlen: int = 100_000
    shadow_rps: float = 0.0
    breaker_failures: int = 20
    breaker_cooldown: float = 30.0
    mirror_lag_max: float = 0.001
    mirror_cpu_pressure_max: float = 0.3


# --- parsing of single values -------------------------------------------------------------------


def parse_host_port(text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":8080" means all interfaces, as in nginx
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"port must be a number, got {port!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port must be 0-65535, got {number}")
    return HostPort(host, number)


def parse_backend_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {text!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {text!r}: {exc}") from None
    return text.rstrip("/")


def parse_percent(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"must be a percentage from 0 to 100, got {text}")
    return value


def positive(kind: Callable[[str], float | int]) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be greater than 0, got {text}")
        return value

    return parse


_positive_int = positive(int)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or ``taskset``'s share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(text: str) -> int:
    """``--workers``: a positive number, or ``auto`` for one serving process per usable CPU."""
    if text.strip().lower() == "auto":
        return usable_cpus()
    if not text.strip().lstrip("+-").isdigit():
        raise ValueError(f"expected a number or auto, got {text!r}")
    return int(_positive_int(text))


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse ``type=``: its ValueError message becomes the usage error
    (argparse itself would print only "invalid value")."""

    def checked(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def parse_size(text: str) -> int:
    """``1048576``, ``64k``, ``8M``, ``1G`` (binary multiples)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    clean = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(clean[-1:], 1)
    number = clean[:-1] if clean[-1:] in units else clean
    value = int(float(number) * scale)
    if value <= 0:
        raise ValueError(f"must be a size greater than 0, got {text!r}")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


def parse_redis_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
        raise ValueError(f"expected a redis:// or rediss:// URL, got {text!r}")
    return text


def parse_non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {text}")
    return value


def parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError(f"expected debug, info, warning or error, got {text!r}")
    return level


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its field, how to parse it from text, and its help."""

    name: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "primary",
        parse_backend_url,
        "URL of the primary (legacy) backend; it alone answers clients.",
        "URL",
    ),
    Option(
        "shadow",
        parse_backend_url,
        "URL of the shadow (rewrite) backend; it receives mirrored requests.",
        "URL",
    ),
    Option("listen", parse_host_port, "Traffic listener (default 127.0.0.1:8080).", "HOST:PORT"),
    Option(
        "admin_listen",
        parse_host_port,
        "Admin listener for /metrics, /healthz, the API and dashboard (default 127.0.0.1:9090).",
        "HOST:PORT",
    ),
    Option(
        "admin_token",
        str,
        "Bearer token for the admin listener; required when it is not bound to loopback.",
        "TOKEN",
    ),
    Option("rules", Path, "Rule file (YAML). Without one, bodies are compared exactly.", "FILE"),
    Option(
        "store",
        str,
        "Where mismatches go: sqlite:///relative.db, sqlite:////abs/path.db or "
        "mongodb://host/db (default sqlite:///shadowproxy.db).",
        "URL",
    ),
    Option(
        "sample",
        parse_percent,
        "Percentage of eligible requests mirrored (default 100).",
        "PERCENT",
    ),
    Option(
        "primary_timeout",
        positive(float),
        "Seconds to wait for the primary before answering 504 (default 30).",
        "SECONDS",
    ),
    Option(
        "shadow_timeout",
        positive(float),
        "Seconds before a shadow call counts as a timeout (default 5).",
        "SECONDS",
    ),
    Option(
        "connect_timeout",
        positive(float),
        "Seconds to open a connection to either backend (default 5).",
        "SECONDS",
    ),
    Option(
        "shadow_max_in_flight",
        positive(int),
        "Shadow calls in flight at once, per serving process; more are skipped and counted "
        "(default 64: a slow shadow holding many calls costs the clients CPU).",
        "N",
    ),
    Option(
        "mirror_body_max",
        parse_size,
        "Largest request body buffered for mirroring (default 1M); larger ones are not mirrored.",
        "SIZE",
    ),
    Option(
        "request_body_max",
        parse_size,
        "Largest request body accepted from clients (default 100M); larger ones get 413.",
        "SIZE",
    ),
    Option(
        "client_body_timeout",
        positive(float),
        "Seconds to wait for each chunk of a client's request body (default 60); a client that "
        "stalls longer gets 408.",
        "SECONDS",
    ),
    Option(
        "capture_max",
        parse_size,
        "Largest response body kept for comparison (default 4M); larger ones are skipped "
        "as too large.",
        "SIZE",
    ),
    Option(
        "queue_size",
        positive(int),
        "Exchanges waiting for or in the comparators; past it new requests are not mirrored, "
        "and are counted (default 1000).",
        "N",
    ),
    Option(
        "queue_bytes_max",
        parse_size,
        "Body bytes the comparator queue and the shadow calls waiting for it may hold "
        "(default 32M); past it, requests are not mirrored and are counted as queue_full.",
        "SIZE",
    ),
    Option("comparators", positive(int), "Comparator worker processes (default 1).", "N"),
    Option(
        "shadow_header",
        str,
        "Header added to mirrored requests, value 1 (default X-Shadow-Request).",
        "NAME",
    ),
    Option("tls_verify", parse_bool, "Verify HTTPS backends' certificates (default true).", "BOOL"),
    Option(
        "endpoint_cap",
        positive(int),
        "Distinct endpoint names before the rest are counted as 'other' (default 200).",
        "N",
    ),
    Option(
        "store_body_max",
        parse_size,
        "Largest body stored with a mismatch (default 64k); the rest is cut.",
        "SIZE",
    ),
    Option(
        "store_batch",
        positive(int),
        "Comparisons written to the store per batch (default 200).",
        "N",
    ),
    Option(
        "store_flush_interval",
        positive(float),
        "Seconds between store flushes (default 0.5).",
        "SECONDS",
    ),
    Option(
        "store_buffer",
        positive(int),
        "Comparisons held in memory while the store is slow or down (default 10000).",
        "N",
    ),
    Option(
        "spool_dir",
        Path,
        "Directory for the disk spool used when the memory buffer is full (default: none).",
        "DIR",
    ),
    Option(
        "spool_max_bytes",
        parse_size,
        "Cap on the disk spool (default 256M); past it records are dropped and counted.",
        "SIZE",
    ),
    Option(
        "group_store_per_hour",
        positive(int),
        "Full records stored per mismatch group per hour; the rest are only counted (default 50).",
        "N",
    ),
    Option(
        "retention_days", positive(float), "Days mismatch records are kept (default 14).", "DAYS"
    ),
    Option(
        "store_max_bytes",
        parse_size,
        "SQLite: prune the oldest records past this size (default 1G).",
        "SIZE",
    ),
    Option("redact_headers", parse_list, "Extra header names to redact, comma-separated.", "NAMES"),
    Option(
        "redact_query",
        parse_list,
        "Extra query parameter names to redact, comma-separated.",
        "NAMES",
    ),
    Option(
        "redact_hmac_key",
        str,
        "Replace redacted values by a keyed HMAC instead of [redacted].",
        "KEY",
    ),
    Option(
        "workers",
        worker_count,
        "Serving processes sharing the traffic port (SO_REUSEPORT); auto: one per CPU this "
        "process may use (default 1).",
        "N|auto",
    ),
    Option(
        "control",
        parse_redis_url,
        "Redis for fleet-wide runtime switches: sampling, kill switch, per-endpoint mirroring, "
        "shadow rate cap (pushed by pub/sub).",
        "URL",
    ),
    Option(
        "queue",
        parse_redis_url,
        "Redis Streams queue: publish exchanges for `shadowproxy worker` processes to compare "
        "and store, instead of comparing here.",
        "URL",
    ),
    Option(
        "stream_maxlen",
        positive(int),
        "Cap on the Redis Streams queue length; trimmed entries are counted (default 100000).",
        "N",
    ),
    Option(
        "shadow_rps",
        parse_non_negative,
        "Cap on requests per second sent to the shadow (fleet-wide with --control; 0 = none).",
        "RATE",
    ),
    Option(
        "breaker_failures",
        positive(int),
        "Consecutive shadow failures that open the circuit breaker (default 20).",
        "N",
    ),
    Option(
        "breaker_cooldown",
        positive(float),
        "Seconds mirroring pauses once the breaker opens, before it tries again (default 30).",
        "SECONDS",
    ),
    Option(
        "mirror_lag_max",
        parse_non_negative,
        "Serving-loop backlog in seconds past which mirroring is sampled down so clients keep "
        "the loop's time; it is also sampled down while the loop is busy over nine tenths of "
        "the time or the CPUs are full (default 0.001; 0 = never).",
        "SECONDS",
    ),
    Option(
        "mirror_cpu_pressure_max",
        parse_non_negative,
        "Share of time some task on the machine may wait for a CPU (Linux PSI) before mirroring "
        "is sampled down (default 0.3; 0 = ignore CPU pressure, e.g. on a host whose other "
        "tenants keep it high).",
        "RATIO",
    ),
    Option("log_level", parse_log_level, "debug, info, warning or error (default info).", "LEVEL"),
)

_FIELDS = {f.name for f in fields(Settings)}
assert {o.name for o in OPTIONS} == _FIELDS, "every Settings field needs exactly one Option"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per option; values stay raw strings until :func:`resolve`."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"YAML file of option names to values (also {ENV_PREFIX}CONFIG).",
    )
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.name,
            metavar=option.metavar or None,
            default=None,
            help=f"{option.help} [env {option.env}]",
        )


def _config_file(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: expected a mapping of option names to values")
    unknown = sorted(str(k) for k in data if str(k).replace("-", "_") not in _FIELDS)
    if unknown:
        raise SettingsError(f"config file {path}: unknown option {unknown[0]!r}")
    return {key.replace("-", "_"): value for key, value in data.items()}


def resolve(
    flags: argparse.Namespace | Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    required: Sequence[str] = ("primary", "shadow"),
) -> Settings:
    """Merge flags, environment and config file into :class:`Settings`; raise SettingsError."""
    given = dict(vars(flags) if isinstance(flags, argparse.Namespace) else flags)
    env = os.environ if environ is None else environ
    config_path = given.get("config") or env.get(ENV_PREFIX + "CONFIG")
    from_file = _config_file(Path(config_path)) if config_path else {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw: Any
        if given.get(option.name) is not None:
            raw, where = given[option.name], option.flag
        elif option.env in env:
            raw, where = env[option.env], option.env
        elif option.name in from_file:
            raw, where = from_file[option.name], f"{config_path}: {option.name}"
        else:
            continue
        if isinstance(raw, list | tuple):
            raw = ",".join(str(item) for item in raw)
        try:
            values[option.name] = option.parse(str(raw))
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from None
    settings = replace(Settings(), **values)
    for name in required:
        if not getattr(settings, name):
            option = next(o for o in OPTIONS if o.name == name)
            raise SettingsError(f"{option.flag} is required (or set {option.env})")
    if not settings.admin_listen.is_loopback and not settings.admin_token:
        raise SettingsError(
            f"--admin-listen {settings.admin_listen} is not loopback: set --admin-token "
            f"(or {ENV_PREFIX}ADMIN_TOKEN) so the admin API is not open to the network"
        )
    return settings
