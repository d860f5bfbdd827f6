"""The CLI reference (`docs/reference/cli.md`), generated: `python -m synth.reference [PATH]` rewrites it.

Stage commands come from the registry (every option with its flag, type, default and help, config-only keys too);
the other commands from their typer signatures. `tests/test_registry.py` fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from synth.registry import Option, StageSpec
from synth.stages import STAGES

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "docs" / "reference" / "cli.md"


def type_name(kind: Any) -> str:
    names = {str: "text", int: "integer", float: "number", bool: "switch", Path: "path", dict: "table"}
    args = [a for a in getattr(kind, "__args__", ()) if a is not type(None)]
    if getattr(kind, "__origin__", None) is list:
        return f"{names[args[0]]}, repeatable"
    return names[args[0]] if args else names[kind]


def cell(text: str | None) -> str:
    return (text or "").replace("\\[", "[").replace("|", "\\|").replace("\n", " ")


def option_row(option: Option) -> str:
    flag = "(config only)" if option.config_only else ", ".join(f"`{f}`" for f in option.cli_flags)
    shown = option.shown_default()
    default = f"`{cell(shown)}`" if shown is not None else ""
    return f"| `{option.key}` | {flag} | {type_name(option.type)} | {default} | {cell(option.help)} |"


def stage_section(spec: StageSpec) -> list[str]:
    inputs = spec.inputs
    usage = f"{inputs.name.upper()}{'...' if inputs.many else ''}"
    usage = usage if inputs.required else f"[{usage}]"
    llm = " It calls an LLM." if spec.needs_llm(spec.defaults()) else ""
    return [
        f"## synth {spec.name}", "", spec.summary + llm, "",
        f"`synth {spec.name} {usage} [OPTIONS]`: {inputs.help} Options come from flags, then the `[{spec.name}]` "
        f"table of `--config FILE`, then the defaults; in a pipeline file they are keys of a `use = \"{spec.name}\"` "
        "stage.", "",
        "| key | flag | type | default | help |", "| --- | --- | --- | --- | --- |",
        *(option_row(o) for o in spec.options), "",
    ]


def command_section(name: str, command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if param.param_type_name == "argument":
            rows.append(f"| `{param.name.upper()}` | argument | | | {cell(getattr(param, 'help', ''))} |")
            continue
        flags = ", ".join(f"`{f}`" for f in (*param.opts, *param.secondary_opts))
        default = "" if param.default in (None, False) or param.is_flag else f"`{param.default}`"
        kind = type_name(param.type_descriptor.annotation)
        rows.append(f"| `{param.name}` | {flags} | {kind} | {default} | {cell(param.help)} |")
    summary = (command.help or "").strip().splitlines()[0]
    return [f"## synth {name}", "", summary, "", "| name | flag | type | default | help |",
            "| --- | --- | --- | --- | --- |", *rows, ""]


def render() -> str:
    """The whole reference, in `synth --help` order."""
    from synth.cli import app

    group = typer.main.get_command(app)
    stage_names = {s.name for s in STAGES}
    lines = ["# CLI reference", "",
             "Generated from the stage registry by `python -m synth.reference`; do not edit by hand. "
             "Keys marked *config only* have no flag: set them in a config file or a pipeline file.", ""]
    for spec in STAGES:
        lines += stage_section(spec)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if name in stage_names:
            continue
        subcommands = getattr(command, "commands", None)  # a group of commands (synth batch ...)
        if subcommands:
            for sub, subcommand in subcommands.items():
                lines += command_section(f"{name} {sub}", subcommand)
        else:
            lines += command_section(name, command)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
