"""bench/bench_index.py's code path at a smoke size: a generated lake, indexed by compaction, swept with and without
the index (the bench stops if the hits differ), and compacted with and without it. Figures are not asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_index_bench_runs_end_to_end_at_a_smoke_size(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_index.py"), "--rows", "30000", "--days", "3",
                           "--sample-days", "1", "--repeat", "1", "--population", "0.01", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "6 indexes in" in out and "% of the lake's" in out
    assert "12 hits (identical with and without)" in out
    assert "entra_signin_logs: 3 of 3 days narrowed by the index" in out
    assert "without the index" in out and "with it:" in out
    assert not list(tmp_path.iterdir()), "the bench left its lakes behind"


def test_a_lake_generated_alone_and_indexed_by_the_command_is_swept_alone(tmp_path) -> None:
    """What the lead re-measures at a quiet moment: `--generate DIR`, `graphlake index rebuild`, then
    `--lake DIR --sweep-only`, which stops if the hits differ with and without the index."""
    lake = tmp_path / "lake"
    size = ["--rows", "30000", "--days", "3", "--population", "0.01"]
    bench = [sys.executable, str(REPO / "bench" / "bench_index.py"), *size]
    done = subprocess.run([*bench, "--generate", str(lake)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (lake / "_index").exists()
    refused = subprocess.run([*bench, "--lake", str(lake), "--sweep-only"], capture_output=True, text=True,
                             timeout=300, cwd=REPO)
    assert refused.returncode != 0 and "--sweep-only needs" in refused.stderr
    indexed = subprocess.run([sys.executable, "-m", "shared.cli", "index", "rebuild", "--lake", str(lake),
                              "--grace-days", "0"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert indexed.returncode == 0, indexed.stderr[-2000:]
    swept = subprocess.run([*bench, "--lake", str(lake), "--sweep-only", "--repeat", "1"], capture_output=True,
                           text=True, timeout=300, cwd=REPO)
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert "12 hits (identical with and without)" in swept.stdout
    assert "entra_signin_logs: 3 of 3 days narrowed by the index" in swept.stdout and "load " in swept.stdout
