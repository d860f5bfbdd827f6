"""The typer adapter of every registered stage: `synth NAME INPUTS... [flags]` generated from its `StageSpec`.

Each declared option becomes a flag that defaults to None, so "not given" is visible to option resolution: a given
flag wins over the command's table of the `--config` file, which wins over the declared default.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from synth.commands.common import report_and_exit, stage_options
from synth.errors import UsageError
from synth.registry import Option, StageSpec

URI_AS_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def flagged(spec: StageSpec) -> list[Option]:
    """The options of a stage that have a flag (the others are config-file and pipeline keys only)."""
    return [o for o in spec.options if not o.config_only]


def flag_parameter(option: Option) -> inspect.Parameter:
    """The command parameter of one option, in the option's help panel, its default shown in the help."""
    flag = typer.Option(*option.cli_flags, help=escape(option.help_text()), min=option.min,
                        rich_help_panel=option.panel, show_default=False)
    return inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[option.type | None, flag])


def inputs_parameter(spec: StageSpec) -> inspect.Parameter:
    inputs = spec.inputs
    annotation = Annotated[list[Path] if inputs.many else Path, typer.Argument(help=inputs.help)]
    default = inspect.Parameter.empty if inputs.required else None
    return inspect.Parameter(inputs.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def config_parameter(spec: StageSpec) -> inspect.Parameter:
    flag = typer.Option("--config", help=escape(f"TOML file; its [{spec.name}] table gives options."))
    return inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Path | None, flag])


def path_text(value: Any) -> Any:
    """A path argument as text; a URI (`s3://...`, which a path argument reads as `s3:/...`) is refused in one line:
    only `synth run` works on a run directory on an object store."""
    if not isinstance(value, Path):
        return value
    if URI_AS_PATH.match(str(value)):
        uri = str(value).replace(":/", "://", 1)
        raise UsageError(f"{uri}: a URI works only as the run directory of `synth run` (its --out, or `out` in the "
                         "pipeline file); this command takes local paths")
    return str(value)


def flag_value(option: Option, value: Any) -> Any:
    """A flag's value as the option's value: None when not given, paths as text, then the option's own parser."""
    if value is None or (isinstance(value, list | tuple) and not value):
        return None
    value = [path_text(v) for v in value] if isinstance(value, list | tuple) else path_text(value)
    return option.parse(value) if option.parse else value


def register_stage(app: typer.Typer, spec: StageSpec) -> None:
    """Register `synth NAME`: the inputs argument, one flag per declared option, and --config."""
    options = flagged(spec)

    def command(**given: Any) -> None:
        config = given.pop("config")
        raw = given.pop(spec.inputs.name)
        inputs = [path_text(p) for p in (raw if spec.inputs.many else [raw]) or []]
        flags = {"inputs": inputs or None, **{o.key: flag_value(o, given[o.key]) for o in options}}
        report_and_exit(spec.execute(stage_options(spec.name, flags, spec.defaults(), config)))

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inputs_parameter(spec), *map(flag_parameter, options), config_parameter(spec)])
    command.__doc__ = spec.summary
    command.__name__ = f"{spec.module_name}_command"
    app.command(spec.name)(command)
