"""Leftovers of killed runs are removed; the work in progress of a live writer is not."""

import os
import subprocess
import sys

from adaptseg.io.atomic import temporary_token
from adaptseg.io.stale import clean_stale


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_leftovers_of_dead_writers_go_live_ones_stay(tmp_path):
    dead = _dead_pid()
    data = tmp_path / "data"
    staging = data / "03_primary" / f".source.staging-{dead}-ab12cd34"
    staging.mkdir(parents=True)
    (staging / "x.npy").write_bytes(b"0")
    backup = data / "03_primary" / f".source.old-{dead}-ab12cd35"
    backup.mkdir()
    lonely_version = data / "06_models" / "dacs" / "model.pt" / "2026-12-04T10.00.00.000Z"
    lonely_version.mkdir(parents=True)
    (lonely_version / f".model.pt.tmp-{dead}-zz91k2").write_bytes(b"partial")
    checkpoint_tmp = data / "06_models" / "runs" / "dacs" / f".last.pt.tmp-{dead}-q1w2e3"
    checkpoint_tmp.parent.mkdir(parents=True)
    checkpoint_tmp.write_bytes(b"partial")
    live = data / "03_primary" / f".target.staging-{temporary_token()}"  # this process: still writing
    live.mkdir()
    kept = data / "02_intermediate" / "source_manifest.csv"
    kept.parent.mkdir(parents=True)
    kept.write_text("split\n")

    removed = clean_stale(data)
    assert set(removed) == {staging, backup, lonely_version / f".model.pt.tmp-{dead}-zz91k2", lonely_version,
                            checkpoint_tmp}
    assert live.exists() and kept.exists() and (data / "06_models" / "dacs" / "model.pt").exists()
    assert clean_stale(data) == []


def test_old_leftovers_without_a_writer_id_go_after_an_hour(tmp_path):
    old, new = tmp_path / ".metrics.json.tmp-1a2b3c4d", tmp_path / ".report.html.tmp-9f8e7d6c"
    old.write_text("x")
    new.write_text("y")
    os.utime(old, (0, 0))
    assert clean_stale(tmp_path) == [old] and new.exists()
