"""Language identification on Debian package descriptions: synth's script table against lingua, short and long texts.

Data: the apt translation indexes (Description-xx of every package, translated by the Debian Description Translation
Project). Only Translation-en is on a default system; the other languages are one `apt-get update` away::

    mkdir -p bench/data/apt/partial
    apt-get update -o Dir::State::Lists=$PWD/bench/data/apt \\
        -o Acquire::Languages=en,de,fr,es,it,pt,nl,pl,sv,da,fi,cs,hu,tr,vi,ru,uk,el,ja,ko,zh_CN,zh_TW

    python bench/bench_language.py --lists bench/data/apt          # default --lists: /var/lib/apt/lists
    python bench/bench_language.py --per-lang 100 --methods script,lingua-latin

Short text = the package's one-line description kept when it has 3-12 words (zh, ja: 5-30 characters), a query's
length; long text = the long description (a passage). Every method runs in its own child process: its load time
(first call), texts per second after loading and peak RSS are its own. "check" columns replay the language check on
Latin-script texts: "false drop" is the share of correctly labelled texts it would reject, "caught" the share of
texts labelled with another Latin-script language of the bench that it rejects.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LATIN = ("cs", "da", "de", "en", "es", "fi", "fr", "hu", "it", "nl", "pl", "pt", "sv", "tr", "vi")
METHODS = ("script", "synth", "lingua-all", "lingua-all-low", "lingua-bench", "lingua-bench-low", "lingua-latin")


# ----- data --------------------------------------------------------------------------------------------------------

def read_index(path: Path) -> str:
    """A (compressed) apt list file as text, decompressed by apt itself (lz4, xz, gz, ...)."""
    helper = "/usr/lib/apt/apt-helper"
    if Path(helper).exists():
        return subprocess.run([helper, "cat-file", str(path)], capture_output=True, check=True).stdout.decode()
    if path.suffix == ".lz4" and shutil.which("lz4"):
        return subprocess.run(["lz4", "-dc", str(path)], capture_output=True, check=True).stdout.decode()
    return path.read_text(encoding="utf-8")


def descriptions(text: str, code: str) -> list[tuple[str, str]]:
    """(short, long) description of every package in a Translation-<code> index."""
    found = []
    field = f"Description-{code}: "
    for block in text.split("\n\n"):
        lines = block.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith(field)), None)
        if start is None:
            continue
        body = ["" if line.strip() == "." else line[1:] for line in lines[start + 1 :] if line.startswith(" ")]
        short, long = lines[start].removeprefix(field).strip(), "\n".join(body).strip()
        if short and long:
            found.append((short, long))
    return found


def is_query_sized(text: str, lang: str) -> bool:
    if lang in ("zh", "ja"):
        return 5 <= len(text) <= 30
    return 3 <= len(text.split()) <= 12


def load_corpus(lists: Path, per_lang: int) -> list[dict[str, str]]:
    """Up to `per_lang` short and long texts per language, spread evenly over each index."""
    samples: list[dict[str, str]] = []
    for path in sorted(lists.glob("*_main_i18n_Translation-*")):
        if "security" in path.name or "updates" in path.name:
            continue
        code = path.name.split("Translation-")[1].split(".")[0].replace("%5f", "_")
        lang = code.split("_")[0]
        pairs = descriptions(read_index(path), code)
        step = max(1, len(pairs) // per_lang)
        for short, long in pairs[::step][:per_lang]:
            if is_query_sized(short, lang):
                samples.append({"lang": lang, "kind": "short", "text": short})
            samples.append({"lang": lang, "kind": "long", "text": long[:2000]})
    return samples


# ----- methods (each in a child process) ---------------------------------------------------------------------------

def detector(method: str, langs: list[str]) -> Any:
    """A function text -> language code (or None) for `method`."""
    if method == "script":
        from synth.text import lang_of_script

        return lang_of_script
    if method == "synth":
        from synth.text.identify import guess_language

        return guess_language
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if method.startswith("lingua-all"):
        builder = LanguageDetectorBuilder.from_all_languages()
    elif method == "lingua-latin":
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in LATIN))
    else:
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in langs))
    found = (builder.with_low_accuracy_mode() if method.endswith("-low") else builder).build()

    def identify(text: str) -> str | None:
        language = found.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language else None

    return identify


def child(args: argparse.Namespace) -> None:
    samples = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    if args.child == "lingua-latin":
        samples = [s for s in samples if s["lang"] in LATIN]
    identify = detector(args.child, sorted({s["lang"] for s in samples}))
    started = time.perf_counter()
    for lang in sorted({s["lang"] for s in samples}):  # loads the models: one text of each language
        identify(next(s["text"] for s in samples if s["lang"] == lang))
    load = time.perf_counter() - started
    result: dict[str, Any] = {"load_s": load}
    for kind in ("short", "long"):
        group = [s for s in samples if s["kind"] == kind]
        started = time.perf_counter()
        guesses = [identify(s["text"]) for s in group]
        seconds = time.perf_counter() - started
        right = [g == s["lang"] for g, s in zip(guesses, group, strict=True)]
        latin = [r for r, s in zip(right, group, strict=True) if s["lang"] in LATIN]
        result[kind] = {"n": len(group), "accuracy": sum(right) / len(group), "per_s": len(group) / seconds,
                        "latin_accuracy": sum(latin) / len(latin) if latin else None,
                        "check": latin_check(guesses, group, args.child)}
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH " + json.dumps(result))


def latin_check(guesses: list[str | None], group: list[dict[str, str]], method: str) -> dict[str, float] | None:
    """Latin-script texts under synth's check (method script/synth) or "drop when the identifier names another
    language" (lingua): the share of right labels dropped, and of wrong Latin-script labels caught."""
    if method in ("script", "synth"):
        from synth.text import lang_mismatch

        def drops(text: str, guess: str | None, label: str) -> bool:
            return lang_mismatch(text, label) is not None
    else:
        def drops(text: str, guess: str | None, label: str) -> bool:
            return guess is not None and guess != label

    latin = [(s["text"], g, s["lang"]) for g, s in zip(guesses, group, strict=True) if s["lang"] in LATIN]
    if not latin:
        return None
    false_drop = sum(drops(text, g, lang) for text, g, lang in latin) / len(latin)
    wrong = [drops(text, g, other) for text, g, lang in latin for other in LATIN if other != lang]
    return {"false_drop": false_drop, "caught": sum(wrong) / len(wrong)}


def run_child(method: str, corpus: Path) -> dict[str, Any] | None:
    done = subprocess.run([sys.executable, __file__, "--child", method, "--corpus", str(corpus)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        print(f"{method}: failed ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    return json.loads(line.removeprefix("BENCH "))


# ----- report ------------------------------------------------------------------------------------------------------

def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=Path, default=Path("/var/lib/apt/lists"))
    parser.add_argument("--per-lang", type=int, default=200)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    samples = load_corpus(args.lists, args.per_lang)
    if not samples:
        sys.exit(f"no Translation indexes under {args.lists}: see this script's docstring")
    corpus = HERE / "data" / "language_corpus.json"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text(json.dumps(samples, ensure_ascii=False), encoding="utf-8")
    langs = sorted({s["lang"] for s in samples})
    counts = {kind: sum(s["kind"] == kind for s in samples) for kind in ("short", "long")}
    print(f"{len(langs)} languages ({', '.join(langs)}); {counts['short']} short, {counts['long']} long texts")
    print("| method | kind | n | accuracy | Latin-script accuracy | check: false drop | check: caught | texts/s | "
          "load s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in args.methods.split(","):
        result = run_child(method, corpus)
        for kind in ("short", "long") if result else ():
            r, check = result[kind], result[kind]["check"] or {}
            print(f"| {method} | {kind} | {r['n']} | {percent(r['accuracy'])} | {percent(r['latin_accuracy'])} | "
                  f"{percent(check.get('false_drop'))} | {percent(check.get('caught'))} | {r['per_s']:,.0f} | "
                  f"{result['load_s']:.2f} | {result['maxrss_mb']:.0f} |")


if __name__ == "__main__":
    main()
