"""Faults of the machine (disk full, an unwritable folder, an input gone mid-run) are one line and lose nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from helpers import SAMPLES

from synth.store import MANIFEST, iter_rows, list_parts

FAULTY_SYNTH = """
import errno, sys
import pyarrow.parquet as pq
import synth.store
{patch}
from synth.cli import main
sys.argv = ["synth", *sys.argv[1:]]
main()
"""

DISK_FULL_AFTER = """
real_write, calls = pq.write_table, [0]
def write_table(table, where, **kwargs):
    calls[0] += 1
    if calls[0] > {after}:
        raise OSError(errno.ENOSPC, "No space left on device")
    real_write(table, where, **kwargs)
synth.store.pq.write_table = write_table
"""


def faulty_synth(patch: str, *args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = FAULTY_SYNTH.format(patch=patch)
    return subprocess.run([sys.executable, "-c", script, *(str(a) for a in args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def ingest_args(out: Path) -> list[object]:
    return ["ingest", SAMPLES / "cls.jsonl", "--shape", "cls", "--out", out, "--part-rows", 4]


def test_disk_full_is_one_line_naming_the_file_and_keeps_finished_parts(tmp_path):
    out = tmp_path / "out"
    result = faulty_synth(DISK_FULL_AFTER.format(after=2), *ingest_args(out))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: No space left on device: ") and str(out) in lines[-1]
    assert "Traceback" not in result.stderr
    assert "finished parts are kept" in lines[-1]
    kept = len(list_parts(out))
    assert kept == 2  # the parts written before the disk filled up
    rerun = faulty_synth("", *ingest_args(out))
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(iter_rows(out))) == 16 and "skipped" in rerun.stderr.lower()


def test_synth_debug_shows_the_traceback(tmp_path):
    result = faulty_synth(DISK_FULL_AFTER.format(after=0), *ingest_args(tmp_path / "out"),
                          env={"SYNTH_DEBUG": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "OSError" in result.stderr


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = faulty_synth("", *ingest_args(blocker / "out"))
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(blocker) in line


def test_an_input_part_gone_mid_run_is_one_line_and_keeps_what_was_done(tmp_path):
    source = tmp_path / "in"
    made = faulty_synth("", *ingest_args(source))
    assert made.returncode == 0, made.stderr
    parts = list_parts(source)
    patch = f"""
real_read, calls = synth.store.read_part, [0]
def read_part(part):
    calls[0] += 1
    if calls[0] == 2:
        import os; os.unlink({str(parts[-1].path)!r})
    return real_read(part)
synth.store.read_part = read_part
"""
    out = tmp_path / "out"
    result = faulty_synth(patch, "export", source, "--out", out, "--format", "jsonl")
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and str(parts[-1].path) in result.stderr


def test_output_files_follow_the_users_umask(tmp_path):
    out = tmp_path / "out"
    script = "import os, sys; os.umask(0o002); from synth.cli import main; sys.argv[0] = 'synth'; main()"
    result = subprocess.run([sys.executable, "-c", script, *(str(a) for a in ingest_args(out))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    files = [out / MANIFEST, *(part.path for part in list_parts(out))]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o664}
    assert json.loads((out / MANIFEST).read_text())
