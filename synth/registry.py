"""The vocabulary of the stage registry: an `Option` is one stage option declared once, a `StageSpec` one stage.

The CLI flags, the config-file and pipeline keys, the defaults, the defaults shown in help and the CLI reference
are all derived from these declarations (`synth.stages` lists the stages), so an option is written in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from synth.errors import UsageError
from synth.stage import plan_input_parts


@dataclass(frozen=True)
class Option:
    """One option of a stage: its key in config files and pipelines, its flag and what it means."""

    key: str
    type: Any
    """The type of the flag's value: str, int, float, bool, Path, list[str] or list[Path] (repeatable)."""
    default: Any = None
    help: str = ""
    flags: tuple[str, ...] = ()
    """Flag declarations, e.g. ("--num-negatives", "-n") or ("--drop-source/--keep-source",); default `--key`."""
    panel: str | None = None
    min: float | None = None
    default_text: str | None = None
    """What the default means when the value alone does not say it (None resolved later, a computed value)."""
    config_only: bool = False
    """A config-file and pipeline key without a flag."""
    parse: Callable[[Any], Any] | None = None
    """Turns the flag's value into the option's value (e.g. K=V strings into a table); config values pass as is."""
    check: Callable[[Any], None] | None = None
    """Raises ValueError for a value that cannot work (the stage names the option in its one-line error)."""

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or (f"--{self.key.replace('_', '-')}",)

    def shown_default(self) -> str | None:
        """The default as help text and the reference show it; None when there is nothing to show."""
        if self.default_text is not None:
            return self.default_text
        return format_value(self.default, self.cli_flags[0] if self.type is bool else None)

    def help_text(self) -> str:
        """The help with its default appended, so no help string repeats a default by hand."""
        shown = self.shown_default()
        return f"{self.help} [default: {shown}]" if shown is not None else self.help

    def but(self, **changes: Any) -> Option:
        """This option with some fields changed (another default or help for one stage)."""
        return replace(self, **changes)


def format_value(value: Any, switch: str | None = None) -> str | None:
    """A default as text: lists joined by commas, tables as K=V, a `--on/--off` switch as the flag it means."""
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        if switch and "/" in switch:
            on, off = switch.split("/")
            return on if value else off
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value.encode("unicode_escape").decode("ascii") if value.isascii() else value
    return str(value)


@dataclass(frozen=True)
class Inputs:
    """The command's positional argument: input directories (or files), one or many, required or not."""

    help: str
    name: str = "inputs"
    many: bool = True
    required: bool = True


def never(_options: dict[str, Any]) -> bool:
    return False


def always(_options: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class StageSpec:
    """A stage: its command and pipeline name, its options, how to run it and whether it calls an LLM."""

    name: str
    summary: str
    inputs: Inputs
    options: tuple[Option, ...]
    run: Callable[[dict[str, Any]], Any]
    """Resolved options -> `StageSummary`."""
    needs_llm: Callable[[dict[str, Any]], bool] = never
    api_embedder: Callable[[dict[str, Any]], bool] = never
    """Whether the stage's own work sends its texts to an embedding endpoint (`mine` or `filter` with `--embedder
    api`): `synth run --estimate` estimates it like an LLM stage (it runs online in every `mode`)."""
    out_folder: str | None = None
    """The stage's folder in a run directory when the pipeline names none (default: the stage's name)."""
    plan: Callable[[dict[str, Any]], Iterable[Any]] | None = None
    """Resolved options -> the stage's `PartPlan`s, as its run plans them (`synth status` compares them with the
    manifest); None: one part per part of the input directories."""

    def __post_init__(self) -> None:
        keys = [o.key for o in self.options]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"stage {self.name} declares option {duplicates[0]!r} twice")

    @property
    def module_name(self) -> str:
        """The name with underscores, as a pipeline's `use` is stored."""
        return self.name.replace("-", "_")

    def execute(self, options: dict[str, Any]) -> Any:
        """Run the stage; an LLM stage in `batch` or `offline` mode runs through the batch driver (not its estimate,
        which sends nothing in any mode)."""
        from synth.llm.settings import BATCH_MODES

        if options.get("mode") in BATCH_MODES and not options.get("estimate") and self.needs_llm(options):
            from synth.llm.batch.driver import run_batched

            return run_batched(self.run, options, self.name)
        return self.run(options)

    def defaults(self) -> dict[str, Any]:
        """Every key the stage accepts with its default (a fresh copy, safe to change)."""
        return {"inputs": [], **{o.key: copy.deepcopy(o.default) for o in self.options}}

    def plans(self, options: dict[str, Any]) -> Iterable[Any]:
        """The parts a run with these resolved options would make."""
        if self.plan is not None:
            return self.plan(options)
        return plan_input_parts([Path(item) for item in options.get("inputs", [])])

    def input_dir(self, options: dict[str, Any]) -> Path:
        """The one input directory of a stage that takes exactly one (`Inputs(many=False)`)."""
        inputs = options.get("inputs") or []
        if len(inputs) != 1:
            raise UsageError(f"{self.name} takes exactly one input directory, got {len(inputs)}")
        return Path(inputs[0])

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)


def pick(options: Iterable[Option], *keys: str, **overrides: dict[str, Any]) -> tuple[Option, ...]:
    """The named options of a shared table, in the order given; `overrides` change fields per key."""
    table = {o.key: o for o in options}
    return tuple(table[k].but(**overrides.get(k, {})) for k in keys)


def defaults_of(options: Iterable[Option]) -> dict[str, Any]:
    """Key -> default of a table of options."""
    return {o.key: copy.deepcopy(o.default) for o in options}
