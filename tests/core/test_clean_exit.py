"""A command that read the lake exits with its own exit code: Arrow's reader threads must not outlive the
interpreter (they aborted `graphlake audit` with 'terminate called without an active exception', exit 134, in a few
percent of runs, after its report was printed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from shared.core.storage import open_store
from shared.land.normalize import InboundEvent, normalize_events

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "normalizers" / "golden"
# Each run reads the lake as the audit does, then exits; on the old code about one run in eight
# aborted, so thirty runs show it nearly always.
RUNS = 30
READER = """
import sys
from shared.core.lake_files import read_tables
from shared.core.storage import open_store
lake = open_store(sys.argv[1])
for _ in range(3):
    assert sum(t.num_rows for t in read_tables(lake, "security_alerts/")) > 0
"""


def test_reading_the_lake_never_aborts_the_interpreter_at_exit(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for name in ("endpoint", "identity", "office365"):
        alerts = orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())
        normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(lake)),
                         state=open_store(str(tmp_path / "state")))
    codes = [subprocess.run([sys.executable, "-c", READER, str(lake)], capture_output=True, timeout=60, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}).returncode for _ in range(RUNS)]
    assert codes == [0] * RUNS, f"exit codes {sorted(set(codes))}: {codes.count(-6) + codes.count(134)} aborted"
