"""Documents ingest and chunking on Debian manual pages: throughput, peak RSS at 1x and 10x, boundary quality.

    python bench/bench_chunking.py                  # 1000 pages, 1x and 10x ingest, synth's chunker vs semchunk
    python bench/bench_chunking.py --pages 500 --copies 1 3

The pages under /usr/share/man (package `manpages`, `manpages-dev`) are turned into text once by a small roff
stripper (fast, no groff) and kept under bench/data/manpages/ (git-ignored); the 10x corpus is the same files hard
linked into 10 subfolders, so each copy has other document ids. semchunk is compared only when it is installed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from synth.ingest.options import CHUNK_DEFAULTS, shipped_tokenizer
from synth.text.chunking import ChunkSettings, chunk_spans, token_counter

HERE = Path(__file__).resolve().parent
MAN = Path("/usr/share/man")
SECTIONS = ("man1", "man2", "man3", "man5", "man7", "man8")
_ESCAPES = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\\(..|\\\[[^\]]*\]|\\[&|^%:]|\\s[+-]?\d|\\\*(?:\(..|\[[^\]]*\]|.)")
_PARAGRAPH_MACROS = {"PP", "LP", "P", "TP", "IP", "HP", "SS", "SH", "sp", "br", "EX", "EE", "RS", "RE", "TQ"}
_FONT_MACROS = {"B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB", "UR", "MT", "SY", "OP"}
_SENTENCE_END = (".", "!", "?", "。", "！", "？", ":", ";")


def roff_text(source: str) -> str:
    """Readable text of a man page: headings and paragraphs kept, requests and font escapes dropped."""
    out: list[str] = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in _PARAGRAPH_MACROS:
                out.append("")
                if macro in {"SH", "SS"} and rest:
                    out += [rest.strip('"'), ""]
                continue
            if macro not in _FONT_MACROS:
                continue
            line = rest.replace('"', "")
        line = _ESCAPES.sub("", line).replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def prepare(pages: int) -> Path:
    """`pages` man pages as text files under bench/data/manpages/ (made once; a `.so` alias page is skipped)."""
    root = HERE / "data" / f"manpages_{pages}" / "1x"
    if root.is_dir():
        return root
    tmp = root.with_name("1x.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    made = 0
    for path in sorted(p for section in SECTIONS for p in (MAN / section).glob("*.gz")):
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        if source.lstrip().startswith(".so "):
            continue
        target = tmp / path.parent.name / path.name.removesuffix(".gz")
        target = target.with_name(target.name + ".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(roff_text(source), encoding="utf-8")
        made += 1
        if made == pages:
            break
    tmp.rename(root)
    return root


def copies(root: Path, count: int) -> Path:
    """`count` copies of the 1x corpus as hard links in subfolders copy0 ... (other paths: other ids)."""
    if count == 1:
        return root
    target = root.with_name(f"{count}x")
    if not target.is_dir():
        for index in range(count):
            for path in root.rglob("*.txt"):
                link = target / f"copy{index}" / path.relative_to(root)
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, link)
    return target


def run_ingest(corpus: Path, out: Path, part_rows: int | None) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit code) of `synth ingest CORPUS --shape documents` in its own process."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-c", "from synth.cli import main; main()", "ingest", str(corpus), "--shape",
               "documents", "--lang", "en", "--out", str(out)]
    if part_rows is not None:
        command += ["--part-rows", str(part_rows)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    _pid, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def quality(texts: list[str], spans: list[list[tuple[int, int]]], count, settings: ChunkSettings) -> list[str]:
    """Chunks; shares ending at sentence punctuation, and also counting paragraph and document ends; token-size
    deciles; shares over max and under size / 4."""
    ends, stops, sizes = 0, 0, []
    for text, doc_spans in zip(texts, spans, strict=True):
        for start, end in doc_spans:
            piece = text[start:end].rstrip()
            stops += piece.endswith(_SENTENCE_END)
            after = text[end:end + 3]
            if piece.endswith(_SENTENCE_END) or end >= len(text.rstrip()) or after.lstrip(" \t").startswith("\n"):
                ends += 1
            sizes.append(len(count(text[start:end])))
    deciles = statistics.quantiles(sizes, n=10)
    over = sum(size > settings.max for size in sizes) / len(sizes)
    tiny = sum(size < settings.min_tail for size in sizes) / len(sizes)
    spread = f"{deciles[0]:.0f} / {statistics.median(sizes):.0f} / {deciles[-1]:.0f}"
    return [f"{len(sizes):,}", f"{stops / len(sizes):.1%}", f"{ends / len(sizes):.1%}", spread, f"{over:.1%}",
            f"{tiny:.1%}"]


def compare_chunkers(root: Path, settings: ChunkSettings) -> Table:
    texts = [path.read_text(encoding="utf-8") for path in sorted(root.rglob("*.txt"))]
    megabytes = sum(len(text.encode()) for text in texts) / 2**20
    count = token_counter(settings.counter)
    table = Table(title=f"chunkers on {len(texts):,} man pages ({megabytes:.1f} MiB), size {settings.size}, "
                        f"max {settings.max} tokens")
    for column in ("chunker", "MB/s", "chunks", "end at .!?:;。", "or paragraph/document end", "tokens p10 / p50 / p90",
                   "over max", f"under {settings.min_tail}"):
        table.add_column(column, justify="right")
    started = time.perf_counter()
    ours = [chunk_spans(text, settings) for text in texts]
    table.add_row("synth", f"{megabytes / (time.perf_counter() - started):.2f}", *quality(texts, ours, count, settings))
    try:
        import semchunk
    except ImportError:
        return table
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings.counter, model_max_length=1 << 30)  # count whole texts
    for size in (settings.size, settings.max):
        chunker = semchunk.chunkerify(tokenizer, size)
        started = time.perf_counter()
        theirs = [chunker(text, offsets=True)[1] for text in texts]
        speed = megabytes / (time.perf_counter() - started)
        table.add_row(f"semchunk {size}", f"{speed:.2f}", *quality(texts, theirs, count, settings))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--copies", type=int, nargs="*", default=[1, 10])
    parser.add_argument("--part-rows", type=int, default=None,
                        help="documents per part (default: ingest's own default for documents)")
    args = parser.parse_args()
    started = time.perf_counter()
    root = prepare(args.pages)
    console = Console(width=150)
    console.print(f"corpus ready in {time.perf_counter() - started:.1f} s: {root}")
    table = Table(title="synth ingest --shape documents (tokenizer: all-MiniLM-L6-v2's, size 200, max 254, "
                        f"--part-rows {args.part_rows or 'default'})")
    for column in ("corpus", "documents", "input MiB", "seconds", "MB/s", "passages", "peak RSS MiB", "exit"):
        table.add_column(column, justify="right")
    for count in args.copies:
        corpus = copies(root, count)
        files = list(corpus.rglob("*.txt"))
        megabytes = sum(path.stat().st_size for path in files) / 2**20
        out = HERE / "out" / f"documents_{count}x"
        seconds, peak, code = run_ingest(corpus, out, args.part_rows)
        passages = sum(pq.ParquetFile(part).metadata.num_rows for part in out.glob("passage/part-*.parquet"))
        table.add_row(f"{count}x", f"{len(files):,}", f"{megabytes:.1f}", f"{seconds:.1f}",
                      f"{megabytes / seconds:.2f}", f"{passages:,}", f"{peak:.0f}", str(code))
    console.print(table)
    settings = ChunkSettings(CHUNK_DEFAULTS.size, CHUNK_DEFAULTS.max, 0, shipped_tokenizer())
    console.print(compare_chunkers(root, settings))


if __name__ == "__main__":
    main()
