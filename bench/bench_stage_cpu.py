"""CPU a synthesis stage spends per record and per output outside the HTTP exchange (microseconds per call).

    python bench/bench_stage_cpu.py            # every measure, best of 5 timeit repeats

The checks run on the engine's event loop, once per output: every microsecond there is taken from the requests in
flight. Job building, new rows, validation and rejects run in the part threads under the same GIL.
"""

from __future__ import annotations

import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

from synth.llm import LLMSettings
from synth.schema import Task, to_table, validate_row
from synth.store import PartRef, write_rejects
from synth.synthesis import checks
from synth.synthesis.generation import Job, RejectedOutput
from synth.synthesis.paraphrase import PARAPHRASE, ParaphraseStage
from synth.synthesis.text import char_length, compact, sentences, tokens
from synth.text import dominant_script, lang_mismatch

TEXTS = {
    "en sentence": "How does the quick brown fox jump over the lazy dog near the river bank?",
    "en paragraph": ("Tides are caused by the Moon. The Sun adds a smaller pull, about half as strong. Spring tides "
                     "happen when both align; neap tides happen at right angles. Coasts see two highs a day."),
    "zh paragraph": ("潮汐是由月球引起的。太阳的引力较小，大约是月球的一半。"
                     "当两者对齐时出现大潮；成直角时出现小潮。海岸每天有两次高潮。"),
    "mixed markup": "Python 里的 <b>list</b> 和 tuple 有什么区别？ A list is mutable.\n\nA tuple is not.",
}
REWRITE = {
    "query": "In what way does the fast brown fox leap across the sleepy dog by the riverside?",
    "positive": ("The Moon is what causes tides. A weaker pull comes from the Sun, roughly half the strength. "
                 "When both line up we get spring tides; at right angles, neap tides. "
                 "Coasts get two high waters daily."),
}
SOURCE = {"task": "retrieval", "instruction": "Given a query, retrieve passages that answer it", "lang": "en",
          "source": "bench", "query": TEXTS["en sentence"], "positive": TEXTS["en paragraph"]}


def per_call(fn: Any, number: int) -> float:
    """Best of 5 repeats, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


class _Collect:
    """Stands in for `--estimate`'s sample: keeps the jobs a stage builds instead of sending them."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def add(self, jobs: list[Job], expected: Any) -> None:
        self.jobs += jobs


def paraphrase_stage(out: Path) -> ParaphraseStage:
    options = {**PARAPHRASE.defaults(), "out": str(out), "num": 2, "max_tries": 2}
    return ParaphraseStage(options, LLMSettings(model="bench-model", base_url="http://127.0.0.1:9/v1"))


def main() -> None:
    rows_out: list[tuple[str, str]] = []

    def row(name: str, micros: float) -> None:
        rows_out.append((name, f"{micros:8.2f}"))

    for label, text in TEXTS.items():
        row(f"tokens ({label})", per_call(lambda t=text: tokens(t), 20000))
        row(f"compact ({label})", per_call(lambda t=text: compact(t), 20000))
        row(f"char_length ({label})", per_call(lambda t=text: char_length(t), 20000))
        row(f"sentences ({label})", per_call(lambda t=text: sentences(t), 20000))
        row(f"dominant_script ({label})", per_call(lambda t=text: dominant_script(t), 20000))
        row(f"lang_mismatch en ({label})", per_call(lambda t=text: lang_mismatch(t, "en"), 20000))
    row("edit_distance (en paragraph)", per_call(lambda: checks.edit_distance(TEXTS["en paragraph"],
                                                                              REWRITE["positive"]), 20000))

    with tempfile.TemporaryDirectory() as tmp:
        stage = paraphrase_stage(Path(tmp))
        rows = [validate_row(Task.RETRIEVAL, {**SOURCE, "query": f"{SOURCE['query']} ({i})"}) for i in range(1000)]
        collect = _Collect()
        stage.sample = collect  # type: ignore[assignment]
        row("paraphrase job building, per record", per_call(lambda: stage.synthesise(Task.RETRIEVAL, rows), 5) / 1000)
        job = collect.jobs[0]
        model = job.response_model.model_fields["items"].annotation.__args__[0]
        passing = model(**REWRITE)
        too_long = model(query=REWRITE["query"] * 2, positive=REWRITE["positive"])
        row("paraphrase check, output kept", per_call(lambda: stage.check(job, passing), 5000))

        def first_output() -> None:  # a fresh record: its job built, its source fields measured by the checks
            collect.jobs.clear()
            stage.synthesise(Task.RETRIEVAL, rows[:1])
            stage.check(collect.jobs[0], passing)

        row("paraphrase record: job + 1st output kept", per_call(first_output, 2000))
        row("paraphrase check, output too long", per_call(lambda: stage.check(job, too_long), 5000))
        generic = model(query="items[0].query 6274b6ea5facdb46", positive="items[0].positive 44314beb432fae1d")
        row("paraphrase check, loopback server's answer", per_call(lambda: stage.check(job, generic), 5000))
        job.kept = [model(query="Which way does a rapid fox hop past the drowsy hound at the stream?",
                          positive=REWRITE["positive"].replace("Moon", "lunar body"))]
        row("paraphrase check, 2nd output (1 kept)", per_call(lambda: stage.check(job, passing), 5000))

        parent = rows[0]
        new = stage.derived_row(parent, Task.RETRIEVAL, passing.model_dump(), "paraphrase", job.template)
        row("derived_row", per_call(lambda: stage.derived_row(parent, Task.RETRIEVAL, passing.model_dump(),
                                                              "paraphrase", job.template), 20000))
        row("validate_row (new row)", per_call(lambda: validate_row(Task.RETRIEVAL, new), 20000))
        part = PartRef(Task.RETRIEVAL, "part-00000", Path(tmp) / "in.parquet")
        rejected = [RejectedOutput(job, too_long, checks.Failure("length_out_of_band", "too long"))] * 1000
        row("rejects_of, per reject", per_call(lambda: stage.rejects_of(part, rejected, rows), 20) / 1000)
        rejects = stage.rejects_of(part, rejected, rows)
        row("write_rejects, per reject", per_call(lambda: write_rejects(Path(tmp), Task.RETRIEVAL, "p", rejects), 5)
            / 1000)
        valid = [validate_row(Task.RETRIEVAL, r) for r in rows]
        row("to_table, per row", per_call(lambda: to_table(Task.RETRIEVAL, valid), 20) / 1000)

    width = max(len(name) for name, _ in rows_out)
    print(f"{'measure':<{width}}  µs/call")
    for name, value in rows_out:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
