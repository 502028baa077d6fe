"""A command that read the lake exits with its own exit code: pyarrow's threads abort the interpreter's teardown now
and then ('terminate called without an active exception', exit 134: about one run in a hundred of a script that only
reads parquet with pyarrow, which aborted `graphlake audit` after its report was printed), so the command line ends
with an exit that skips that teardown (shared/cli/__init__.py, run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from shared.core.storage import open_store
from shared.land.normalize import InboundEvent, normalize_events
from shared.ops.compact import compact

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "normalizers" / "golden"
# Each run reads every index and data file of the lake with pyarrow (`graphlake index check`), then exits; a
# script doing the same without the command's exit aborted in one or two runs of a hundred under load.
RUNS = 30


def test_reading_the_lake_never_aborts_the_interpreter_at_exit(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for name in ("endpoint", "identity", "office365"):
        alerts = orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())
        normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(lake)),
                         state=open_store(str(tmp_path / "state")))
    compact(open_store(str(lake)), grace_days=0)
    command = [sys.executable, "-m", "shared.cli", "index", "check", "--lake", str(lake), "--grace-days", "0"]
    codes = [subprocess.run(command, capture_output=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}).returncode for _ in range(RUNS)]
    assert codes == [0] * RUNS, f"exit codes {sorted(set(codes))}: {codes.count(-6) + codes.count(134)} aborted"
