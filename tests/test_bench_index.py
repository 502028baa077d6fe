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
