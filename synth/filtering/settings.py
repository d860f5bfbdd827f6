"""Rule settings that vary per task type and per origin.

A setting is either one value for every record, or a table whose keys are `TASK.ORIGIN`, `ORIGIN`, `TASK` or
`default`; the most specific key that matches a record wins, and a record no key matches has the rule off.
"""

from __future__ import annotations

from typing import Any

from synth.errors import ConfigError


def is_off(value: Any) -> bool:
    """`None`, `false`, "off" and "none" switch a rule off (0 does not: a margin of 0 is a real margin)."""
    return value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none"))


def setting_for(value: Any, task: str, origin: str) -> Any:
    """The value of a (possibly per-task/per-origin) setting for one record; None means the rule is off."""
    if isinstance(value, dict):
        for key in (f"{task}.{origin}", origin, task, "default"):
            if key in value:
                value = value[key]
                break
        else:
            return None
    return None if is_off(value) else value


def parse_scalar(text: str) -> Any:
    """A flag value as bool, number or string, the way TOML would read it."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(lowered) if lowered.lstrip("-").isdigit() else float(lowered)
    except ValueError:
        return text.strip()


def parse_setting_flags(values: list[str] | None, flag: str) -> Any:
    """Repeated flags such as `--min-score 0.7 --min-score source=p10` as a setting (None when not given)."""
    if not values:
        return None
    table: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            table["default"] = parse_scalar(item)
        elif key.strip() and value.strip():
            table[key.strip()] = parse_scalar(value)
        else:
            raise ConfigError(f"{flag} expects VALUE or KEY=VALUE, got {item!r}")
    return table["default"] if list(table) == ["default"] else table


def check_setting(name: str, value: Any, check_one: Any) -> None:
    """Validate every value of a setting with `check_one(value)`, naming the option in the error."""
    values = value.values() if isinstance(value, dict) else [value]
    for one in values:
        if is_off(one):
            continue
        try:
            check_one(one)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"option {name}: {exc}") from exc
