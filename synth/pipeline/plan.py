"""Read a pipeline file into a plan: each stage's fully resolved options, input and output directories.

File shape::

    name = "demo"                    # run directory runs/NAME unless `out` or --out says otherwise
    [llm]                            # shared LLM options, given to every stage that has them
    [embedder]                       # shared embedder options (embedder, embed_model, ...)
    [executor]                       # where parts run: kind = "ray", address, ... (synth.executor.choice)
    [[stage]]
    use = "ingest"                   # a stage of synth.stages: ingest, paraphrase, augment, llm-negatives, ...
    name = "ingest-qa"               # optional, default `use`; the stage's folder in the run directory
                                     # (letters, digits, - and _ only)
    inputs = ["qa.jsonl"]            # files (relative to this file) or names of earlier stages (`split/train`: a
                                     # folder of one); default: previous stage
    # ... the command's own options
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth import storage
from synth.config import load_toml, resolve
from synth.embed.options import EMBED_DEFAULTS
from synth.errors import ConfigError
from synth.executor.choice import ExecutorSettings
from synth.llm.endpoints import public_entries
from synth.llm.settings import LLM_OPTION_DEFAULTS
from synth.registry import StageSpec
from synth.stages import stage_spec
from synth.store import config_hash

PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A stage name is its folder in the run directory, so it may not contain `/`, `.` or anything else."""
SECRET_KEYS = frozenset({"api_key", "extra_headers"})
TOP_KEYS = frozenset({"name", "out", "llm", "embedder", "executor", "stage"})


@dataclass
class PlannedStage:
    """One stage of the plan: its name, the registered stage it uses and resolved options (inputs and out included)."""

    name: str
    use: str
    options: dict[str, Any]

    @property
    def spec(self) -> StageSpec:
        return stage_spec(self.use)

    @property
    def out(self) -> Path:
        return Path(self.options["out"])

    def public(self) -> dict[str, Any]:
        """Options without secrets or unset values, as written to run.toml."""
        public = {k: v for k, v in self.options.items() if k not in SECRET_KEYS and v is not None}
        if "endpoints" in public:
            public["endpoints"] = public_entries(public["endpoints"])
        return public

    def needs_llm(self) -> bool:
        return self.spec.needs_llm(self.options)


@dataclass
class Plan:
    path: Path
    run_dir: Path
    stages: list[PlannedStage]
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    """Where parts run; not part of the config: a run on a cluster makes the same data as a local one."""

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


def plain_name(value: Any, what: str, path: Path) -> str:
    """A name that becomes a folder of the run (or of `runs/`), refused unless it is a plain folder name: a `/`,
    `..` or an absolute path would write outside it."""
    name = str(value)
    if not PLAIN_NAME.fullmatch(name):
        raise ConfigError(f"{what} {name!r} in {path} must be a plain folder name (letters, digits, - and _)")
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
    """Names of earlier stages become their output folders, `NAME/SUB` a folder inside one (split's `split/train`);
    other entries are files relative to the pipeline file."""
    if given is None:
        if previous is None:
            raise ConfigError(f"stage {name!r} needs inputs (it is the first stage)")
        return [str(previous.out)]
    if not isinstance(given, list):
        given = [given]
    for item in given:
        if storage.is_uri(str(item)):
            raise ConfigError(f"stage {name!r}: input {item} is a URI; inputs are local files or earlier stages (the "
                              "run directory may be a URI: its `out`)")
    return [stage_folder(str(item), outs) or str((base / str(item)).resolve()) for item in given]


def stage_folder(item: str, outs: dict[str, Path]) -> str | None:
    """The output folder an input names (`NAME` or `NAME/SUB` of an earlier stage), or None for a file."""
    stage, _, sub = item.partition("/")
    if stage not in outs:
        return None
    return str(outs[stage] / sub) if sub else str(outs[stage])


def load_plan(path: Path, out: str | Path | None = None) -> Plan:
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
    run_name = plain_name(data["name"], "name", path) if "name" in data else path.stem
    run_dir = storage.resolve_dir(out or data.get("out") or Path("runs") / run_name)  # a URI: its local copy
    stages: list[PlannedStage] = []
    outs: dict[str, Path] = {}
    for table in tables:
        if "use" not in table:
            raise ConfigError(f"a [[stage]] in {path} has no `use` key (which command to run)")
        spec = stage_spec(table["use"])
        name = plain_name(table.get("name") or table["use"], "stage name", path)
        if name in outs:
            raise ConfigError(f"two stages are named {name!r} in {path}: give one a `name`")
        defaults = spec.defaults()
        shared = {k: v for k, v in {**llm, **embedder}.items() if k in defaults}
        own = {k: v for k, v in table.items() if k not in ("use", "name", "inputs", "out")}
        try:
            options = resolve({}, {**shared, **own}, defaults)
        except ConfigError as exc:
            raise ConfigError(f"stage {name!r} in {path}: {exc}") from exc
        previous = stages[-1] if stages else None
        options["inputs"] = resolve_inputs(table.get("inputs"), previous, outs, path.parent, name)
        folder = plain_name(table["out"], f"stage {name!r} out", path) if "out" in table else spec.out_folder or name
        options["out"] = str((run_dir / folder).resolve())
        outs[name] = Path(options["out"])
        stages.append(PlannedStage(name, spec.module_name, options))
    return Plan(path, run_dir, stages, ExecutorSettings.from_table(data.get("executor", {}), str(path)))
