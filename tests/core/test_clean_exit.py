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
# Each run reads every index and data file of the lake with pyarrow (`graphlake index check`), then exits.
# The runs are `python -m shared.cli` as a user starts it, forked from one process that imported what the command
# imports (each run costs its own work, not a second of imports). That process first makes the C runtime's teardown
# (exit(): its handlers and the C++ static destructors, where pyarrow's threads abort) end in abort(), so a run
# that reaches that teardown fails every time, not one run in a hundred: any one run detects an exit that does not
# skip it, which 30 plain runs caught about one time in four. Ten runs, for what else might end a run now and then.
RUNS = 10
HARNESS = """
import ctypes, json, os, runpy, sys
libc = ctypes.CDLL(None)
libc.on_exit(libc.abort, None)
import pyarrow.dataset, shared.cli, shared.core.settings, shared.core.storage, shared.ops.index_build
out, argv, codes = sys.argv[1], sys.argv[2:], []
for i in range({runs}):
    pid = os.fork()
    if pid == 0:
        fd = os.open(f"{{out}}/{{i}}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.argv = ["graphlake", *argv]
        runpy.run_module("shared.cli", run_name="__main__", alter_sys=True)
        sys.exit(0)  # the command returned: the interpreter's own teardown, as after `python -m`
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(codes), flush=True)
os._exit(0)  # this process's own teardown would end in the abort above
"""


def test_reading_the_lake_never_aborts_the_interpreter_at_exit(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for name in ("endpoint", "identity", "office365"):
        alerts = orjson.loads((GOLDEN / f"{name}.input.json").read_bytes())
        normalize_events([InboundEvent(orjson.dumps(a)) for a in alerts], lake=open_store(str(lake)),
                         state=open_store(str(tmp_path / "state")))
    compact(open_store(str(lake)), grace_days=0)
    outputs = tmp_path / "runs"
    outputs.mkdir()
    done = subprocess.run([sys.executable, "-c", HARNESS.format(runs=RUNS), str(outputs), "index", "check",
                           "--lake", str(lake), "--grace-days", "0"],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    codes = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0] * RUNS, f"exit codes {sorted(set(codes))}: {codes.count(-6) + codes.count(134)} aborted"
    for i in range(RUNS):
        assert (outputs / f"{i}.out").read_text().splitlines()[-1].endswith(", 0 rebuilt, 0 removed"), i
