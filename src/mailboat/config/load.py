"""Reading a configuration: TOML -> Config, with errors that name the key path.

`load_config(path)` raises ConfigError whose `errors` are lines such as
``listener[1].tls: Input should be 'none', 'optional', 'required' or 'implicit'``, one per
problem, so `mailboat check-config` can print them all at once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from mailboat.config.schema import Config, Listener

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


def _key_path(loc: tuple[object, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def _format(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (see the configuration reference in README.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{_key_path(error['loc'])}: {message}")
    return lines


def _resolve_paths(config: Config, base: Path) -> Config:
    """Make data_dir and file paths absolute, relative paths being relative to `base`."""

    def absolute(value: str) -> str:
        return value if not value or os.path.isabs(value) else str((base / value).resolve())

    updates: dict[str, object] = {"data_dir": absolute(config.data_dir)}
    if config.tls.cert or config.tls.key:
        updates["tls"] = config.tls.model_copy(
            update={"cert": absolute(config.tls.cert), "key": absolute(config.tls.key)}
        )
    return config.model_copy(update=updates)


def _check_files(config: Config) -> list[str]:
    errors = []
    if bool(config.tls.cert) != bool(config.tls.key):
        errors.append("tls: cert and key go together: set both, or neither for a self-signed pair")
    for key in ("cert", "key"):
        path = getattr(config.tls, key)
        if path and not os.access(path, os.R_OK):
            errors.append(f"tls.{key}: cannot read {path}: give the path of a PEM file")
    for index, entry in enumerate(config.dkim.sign):
        if not os.access(entry.key, os.R_OK):
            errors.append(f"dkim.sign[{index}].key: cannot read {entry.key}: "
                          f"make one with 'mailboat dkim keygen {entry.domain}'")
    seen: dict[str, int] = {}
    for index, listener in enumerate(config.listener):
        if listener.address.endswith(":0"):
            continue  # port 0: the system picks a free port for each
        if listener.address in seen:
            errors.append(f"listener[{index}].address: {listener.address} is also listener[{seen[listener.address]}]")
        seen.setdefault(listener.address, index)
    return errors


def parse_config(text: str, source: str, base: Path) -> Config:
    """Validate TOML text; `base` is the directory relative paths are taken from."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _format(exc)) from None
    config = _resolve_paths(config, base)
    if not config.listener:
        config = config.model_copy(update={"listener": [Listener(**item) for item in EMBEDDED_LISTENERS]})
    errors = _check_files(config)
    if errors:
        raise ConfigError(source, errors)
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
