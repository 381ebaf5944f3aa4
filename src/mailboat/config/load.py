"""Reading a configuration: TOML -> Config, with errors that name the key path.

`load_config(path)` raises ConfigError whose `errors` are lines such as
``listener[1].tls: Input should be 'none', 'optional', 'required' or 'implicit'``, one per
problem, so `mailboat check-config` can print them all at once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailboat.config.names import domain_name, mailbox
from mailboat.config.schema import Config, Listener, parse_address

# What `mailboat serve` runs with no configuration file (SPEC "the embedded default").
EMBEDDED_LISTENERS = (
    {"kind": "smtp", "address": "127.0.0.1:2525"},
    {"kind": "submission", "address": "127.0.0.1:2587"},
    {"kind": "submissions", "address": "127.0.0.1:2465"},
)
DEFAULT_CONFIG_FILE = "mailboat.toml"


class ConfigError(Exception):
    """A configuration that cannot be used; `errors` holds one line per problem."""

    def __init__(self, source: str, errors: Iterable[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(f"{source}: " + "; ".join(self.errors))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(loc: tuple[object, ...]) -> str:
    """("listener", 1, "tls") -> "listener[1].tls"; keys that TOML must quote are quoted."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue  # pydantic's marker for "the key itself": the path already ends at it
        else:
            text = str(part)
            if not _BARE_KEY.fullmatch(text):
                text = json.dumps(text, ensure_ascii=False)
            path += ("." if path else "") + text
    return path or "(top level)"


def _format(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    lines = []
    aliases = data.get("aliases")
    if not isinstance(aliases, dict):
        aliases = {}
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (see the configuration reference in README.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif len(loc) == 3 and loc[0] == "aliases" and loc[2] == 0 and isinstance(aliases.get(loc[1]), str):
            loc = loc[:2]  # "a@x" = "b": one target written without a list
        lines.append(f"{_key_path(loc)}: {message}")
    return lines


def _resolve_paths(config: Config, base: Path) -> Config:
    """Make data_dir and file paths absolute, relative paths being relative to `base`."""
    updates: dict[str, object] = {"data_dir": _absolute(config.data_dir, base)}
    if config.tls.cert or config.tls.key:
        updates["tls"] = config.tls.model_copy(
            update={"cert": _absolute(config.tls.cert, base), "key": _absolute(config.tls.key, base)}
        )
    return config.model_copy(update=updates)


def _absolute(value: str, base: Path) -> str:
    return value if not value or os.path.isabs(value) else str((base / value).resolve())


def _table(data: object, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _tables(data: object, key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key) if isinstance(data, dict) else None
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)] if isinstance(value, list) else []


def _text(table: dict[str, Any], key: str) -> str:
    value = table.get(key, "")
    return value if isinstance(value, str) else ""


def _check_semantics(data: dict[str, Any], base: Path) -> list[str]:
    """What the schema cannot see alone: files, listener clashes, duplicate entries.

    Runs on the raw TOML, not on a Config, so that it reports its findings even when the schema
    refused other keys: `check-config` shows every error of a file at once. A value of the wrong
    type is skipped here (the schema names it).
    """
    errors = []
    tls = _table(data, "tls")
    cert, key = _text(tls, "cert"), _text(tls, "key")
    if bool(cert) != bool(key) and all(isinstance(tls.get(k, ""), str) for k in ("cert", "key")):
        errors.append("tls: cert and key go together: set both, or neither for a self-signed pair")
    for name, value in (("cert", cert), ("key", key)):
        if value and not os.access(_absolute(value, base), os.R_OK):
            errors.append(f"tls.{name}: cannot read {_absolute(value, base)}: give the path of a PEM file")
    signs: dict[tuple[str, str], int] = {}
    for index, entry in _tables(_table(data, "dkim"), "sign"):
        path, domain, selector = _text(entry, "key"), _text(entry, "domain"), _text(entry, "selector")
        if path and not os.access(_absolute(path, base), os.R_OK):
            errors.append(f"dkim.sign[{index}].key: cannot read {_absolute(path, base)}: "
                          f"make one with 'mailboat dkim keygen {domain or 'DOMAIN'}'")
        same = _first_seen(signs, (_domain_key(domain), selector.lower()), index)
        if domain and selector and same is not None:
            errors.append(f"dkim.sign[{index}]: selector {selector!r} of {domain} is also dkim.sign[{same}]")
    routes: dict[str, int] = {}
    for index, entry in _tables(data, "route"):
        domain = _text(entry, "domain")
        same = _first_seen(routes, _domain_key(domain), index)
        if domain and same is not None:
            errors.append(f"route[{index}].domain: {domain} is also route[{same}]: keep one route per domain")
    errors += _listener_clashes(data)
    errors += _alias_duplicates(_table(data, "aliases"))
    return errors


def _first_seen(seen: dict[Any, int], key: Any, index: int) -> int | None:
    """The index `key` was first seen at, or None (and `index` is remembered)."""
    if key is None:
        return None
    if key in seen:
        return seen[key]
    seen[key] = index
    return None


def _domain_key(text: str) -> str | None:
    try:
        return domain_name(text, min_labels=1)
    except ValueError:
        return None  # the schema reports it


def _listener_clashes(data: dict[str, Any]) -> list[str]:
    """Two listeners that cannot both bind: the same socket, or a wildcard and an address of the
    same family on the same port (IPv6 sockets are bound IPV6_V6ONLY, so :: and 0.0.0.0 coexist)."""
    errors = []
    bound: list[tuple[int, str, object]] = []
    for index, entry in _tables(data, "listener"):
        address = _text(entry, "address")
        try:
            endpoint = parse_address(address)
        except ValueError:
            continue
        if isinstance(endpoint, str):
            socket_id: object = ("unix", os.path.normpath(endpoint))
        else:
            host, port = endpoint
            if port == 0:
                continue  # port 0: the system picks a free port for each
            try:
                ip = ipaddress.ip_address(host)
                socket_id = (ip.version, port, ip)
            except ValueError:
                socket_id = ("name", port, host.lower().rstrip("."))
        for other, other_address, other_id in bound:
            if _clash(socket_id, other_id):
                errors.append(f"listener[{index}].address: {address} clashes with listener[{other}] "
                              f"({other_address}): both cannot listen; change one address or port")
                break
        bound.append((index, address, socket_id))
    return errors


def _clash(a: object, b: object) -> bool:
    if a == b:
        return True
    if not (isinstance(a, tuple) and isinstance(b, tuple)) or a[0] != b[0] or a[0] in ("unix", "name"):
        return False
    return a[1] == b[1] and (a[2].is_unspecified or b[2].is_unspecified)


def _alias_duplicates(aliases: dict[str, Any]) -> list[str]:
    """Two keys for one mailbox ("Alice@Example.com" and "alice@example.com"): one would be lost."""
    errors = []
    seen: dict[str, str] = {}
    for key in aliases:
        try:
            local, _, domain = mailbox(key).rpartition("@")
        except ValueError:
            continue  # the schema reports it
        normal = f"{local.lower()}@{domain}"
        if normal in seen:
            errors.append(f"{_key_path(('aliases', key))}: the same address as {_key_path(('aliases', seen[normal]))}: "
                          "merge their targets into one entry")
        seen.setdefault(normal, key)
    return errors


def parse_config(text: str, source: str, base: Path) -> Config:
    """Validate TOML text; `base` is the directory relative paths are taken from.

    Every error is gathered before raising, the schema's and the semantic checks' alike; only a
    TOML syntax error is alone (nothing after it can be read), with its line and column.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    errors: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors += _format(exc, data)
    errors += _check_semantics(data, base)
    if errors or config is None:
        raise ConfigError(source, errors)
    config = _resolve_paths(config, base)
    if not config.listener:
        config = config.model_copy(update={"listener": [Listener(**item) for item in EMBEDDED_LISTENERS]})
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["no such file: give the path of a TOML configuration"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None
    return parse_config(text, str(path), path.resolve().parent)


def default_config(cwd: str | os.PathLike[str] | None = None) -> Config:
    """The embedded default: SPEC "mailboat serve — the embedded default"."""
    return parse_config("", "(embedded default)", Path(cwd or os.getcwd()))


def find_config(explicit: str | None) -> Config:
    """The configuration a command uses: --config F, else ./mailboat.toml, else the default."""
    if explicit:
        return load_config(explicit)
    if os.path.exists(DEFAULT_CONFIG_FILE):
        return load_config(DEFAULT_CONFIG_FILE)
    return default_config()
