"""Options from flags, a TOML config file and the environment: flags override config, config overrides defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from synth.errors import ConfigError


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file is a one-line usage error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load_section(path: Path | None, section: str) -> dict[str, Any]:
    """The `[section]` table of a config file, or {} when no file is given."""
    if path is None:
        return {}
    value = load_toml(path).get(section, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config key [{section}] in {path} must be a table")
    return value


def resolve(flags: dict[str, Any], section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Merge option sources: a flag given (not None) wins, then the config section, then the default.

    Unknown keys in the config section are an error naming the key, so typos never pass silently.
    """
    unknown = sorted(set(section) - set(defaults) - set(flags))
    if unknown:
        raise ConfigError(f"unknown config key: {unknown[0]} (known: {', '.join(sorted(defaults))})")
    merged = dict(defaults)
    merged.update({k: v for k, v in section.items()})
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """`FIELD=VALUE` flags (for example `--map query=title`) as a dict."""
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{flag} expects FIELD=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs
