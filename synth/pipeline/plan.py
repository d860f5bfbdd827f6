"""Read a pipeline file into a plan: each stage's fully resolved options, input and output directories.

File shape::

    name = "demo"                    # run directory runs/NAME unless `out` or --out says otherwise
    [llm]                            # shared LLM options, given to every stage that has them
    [embedder]                       # shared embedder options (embedder, embed_model, ...)
    [[stage]]
    use = "ingest"                   # the command: ingest, paraphrase, llm-negatives, querygen, mine, filter, export
    name = "ingest-qa"               # optional, default `use`; the stage's folder in the run directory
    inputs = ["qa.jsonl"]            # files (relative to this file) or names of earlier stages; default: previous stage
    # ... the command's own options
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

from synth.config import load_toml, resolve
from synth.embed import EMBED_DEFAULTS
from synth.errors import ConfigError
from synth.llm.settings import LLM_OPTION_DEFAULTS
from synth.store import config_hash

STAGE_COMMANDS = ("ingest", "paraphrase", "augment", "llm_negatives", "querygen", "mine", "filter", "export")
LLM_STAGES = frozenset({"paraphrase", "augment", "llm_negatives", "querygen"})
DEFAULT_OUT = {"filter": "final", "export": "export"}
"""The filter's output is the final data (`RUN/final`), the export's the trainer files (`RUN/export`)."""
SECRET_KEYS = frozenset({"api_key", "extra_headers"})
TOP_KEYS = frozenset({"name", "out", "llm", "embedder", "stage"})


@dataclass
class PlannedStage:
    """One stage of the plan: its name, command module and resolved options (inputs and out included)."""

    name: str
    use: str
    options: dict[str, Any]

    @property
    def module(self) -> ModuleType:
        return import_module(f"synth.commands.{self.use}")

    @property
    def out(self) -> Path:
        return Path(self.options["out"])

    def public(self) -> dict[str, Any]:
        """Options without secrets or unset values, as written to run.toml."""
        return {k: v for k, v in self.options.items() if k not in SECRET_KEYS and v is not None}

    def needs_llm(self) -> bool:
        return self.use in LLM_STAGES or (self.use == "filter" and bool(self.options.get("judge")))


@dataclass
class Plan:
    path: Path
    run_dir: Path
    stages: list[PlannedStage]

    def config(self) -> dict[str, Any]:
        """The resolved configuration of every stage, in order (what run.toml holds)."""
        stages = [{"name": s.name, "use": s.use, **s.public()} for s in self.stages]
        return {"pipeline": str(self.path), "stage": stages}

    def hash(self) -> str:
        return config_hash(self.config())

    def select(self, first: str | None, last: str | None) -> list[PlannedStage]:
        """The stages from `first` to `last` (names), inclusive."""
        names = [s.name for s in self.stages]
        for given in (first, last):
            if given is not None and given not in names:
                raise ConfigError(f"no stage named {given!r} in {self.path} (stages: {', '.join(names)})")
        start = names.index(first) if first else 0
        stop = names.index(last) + 1 if last else len(names)
        if start >= stop:
            raise ConfigError(f"--from {first} comes after --to {last}")
        return self.stages[start:stop]


def command_name(use: Any) -> str:
    name = str(use).replace("-", "_")
    if name not in STAGE_COMMANDS:
        known = ", ".join(c.replace("_", "-") for c in STAGE_COMMANDS)
        raise ConfigError(f"unknown stage command {use!r} (known: {known})")
    return name


def check_table(data: dict[str, Any], key: str, known: dict[str, Any], path: Path) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{key}] in {path} must be a table")
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{key}] of {path} (known: {', '.join(sorted(known))})")
    return table


def resolve_inputs(
    given: Any, previous: PlannedStage | None, outs: dict[str, Path], base: Path, name: str
) -> list[str]:
    """Names of earlier stages become their output folders; other entries are files relative to the pipeline file."""
    if given is None:
        if previous is None:
            raise ConfigError(f"stage {name!r} needs inputs (it is the first stage)")
        return [str(previous.out)]
    if not isinstance(given, list):
        given = [given]
    return [str(outs[str(item)]) if str(item) in outs else str((base / str(item)).resolve()) for item in given]


def load_plan(path: Path, out: Path | None = None) -> Plan:
    """Parse and resolve a pipeline file; every mistake is a one-line ConfigError naming the stage and key."""
    path = Path(path).resolve()
    data = load_toml(path)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown top-level key {unknown[0]!r} in {path} (known: {', '.join(sorted(TOP_KEYS))})")
    llm = check_table(data, "llm", LLM_OPTION_DEFAULTS, path)
    embedder = check_table(data, "embedder", EMBED_DEFAULTS, path)
    tables = data.get("stage")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path} lists no stages: add [[stage]] tables with use = \"ingest\" and so on")
    run_dir = Path(out or data.get("out") or Path("runs") / str(data.get("name") or path.stem)).resolve()
    stages: list[PlannedStage] = []
    outs: dict[str, Path] = {}
    for table in tables:
        if "use" not in table:
            raise ConfigError(f"a [[stage]] in {path} has no `use` key (which command to run)")
        use = command_name(table["use"])
        name = str(table.get("name") or table["use"])
        if name in outs:
            raise ConfigError(f"two stages are named {name!r} in {path}: give one a `name`")
        defaults = import_module(f"synth.commands.{use}").DEFAULTS
        shared = {k: v for k, v in {**llm, **embedder}.items() if k in defaults}
        own = {k: v for k, v in table.items() if k not in ("use", "name", "inputs", "out")}
        try:
            options = resolve({}, {**shared, **own}, defaults)
        except ConfigError as exc:
            raise ConfigError(f"stage {name!r} in {path}: {exc}") from exc
        previous = stages[-1] if stages else None
        options["inputs"] = resolve_inputs(table.get("inputs"), previous, outs, path.parent, name)
        options["out"] = str((run_dir / str(table.get("out") or DEFAULT_OUT.get(use, name))).resolve())
        outs[name] = Path(options["out"])
        stages.append(PlannedStage(name, use, options))
    return Plan(path, run_dir, stages)
