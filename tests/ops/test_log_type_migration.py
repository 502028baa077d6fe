"""A lake written before rows took Panther's log type name (`MicrosoftGraph.SecurityAlert`): the views, search and
rules read its rows as `MicrosoftGraph.SecurityAlertV2`, and compaction writes them so."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from click.testing import CliRunner

from normalizers.names import LEGACY_LOG_TYPE, LOG_TYPE, TABLE
from shared.cli import main
from shared.land.normalize import InboundEvent, normalize_events
from shared.ops.compact import compact
from shared.core.storage import LocalStore
from tests.detections.test_alerts import golden

UTC = dt.UTC


def legacy_lake(root: Path) -> LocalStore:
    """Two batches landed (two files in each day), then given the old name, as the normalizer wrote it before."""
    lake = LocalStore(str(root / "lake"))
    alerts = golden("identity", "cloud_apps")
    # A later version of each alert, landed apart: two files in each day partition.
    later = [{**a, "lastUpdateDateTime": "2026-06-30T00:00:00Z"} for a in alerts]
    for batch in (alerts, later):
        normalize_events([InboundEvent(orjson.dumps(a)) for a in batch], lake=lake, state=LocalStore(str(root / "s")))
    for path in (root / "lake" / TABLE).rglob("*.parquet"):
        table = pq.read_table(path)
        at = table.schema.get_field_index("p_log_type")
        table = table.set_column(at, "p_log_type", pa.array([LEGACY_LOG_TYPE] * table.num_rows))
        pq.write_table(table, path)
    return lake


def files_log_types(root: Path) -> set[str]:
    return {v for path in (root / "lake" / TABLE).rglob("*.parquet")
            for v in pc.unique(pq.read_table(path, columns=["p_log_type"])["p_log_type"]).to_pylist()}


def query(root: Path, sql: str) -> list[dict]:
    out = CliRunner().invoke(main, ["query", "--lake", str(root / "lake"), "--format", "json", sql],
                             catch_exceptions=False)
    return [orjson.loads(line) for line in out.output.splitlines() if line.startswith("{")]


def test_old_rows_read_with_the_new_name_and_compaction_rewrites_them(tmp_path):
    lake = legacy_lake(tmp_path)
    assert files_log_types(tmp_path) == {LEGACY_LOG_TYPE}
    assert query(tmp_path, f"SELECT DISTINCT p_log_type FROM {TABLE}") == [{"p_log_type": LOG_TYPE}]
    assert query(tmp_path, "SELECT DISTINCT p_log_type FROM security_alerts_latest") == [{"p_log_type": LOG_TYPE}]
    found = CliRunner().invoke(main, ["search", "--lake", str(tmp_path / "lake"), "--ip", "198.51.100.23",
                                      "--since", "2020-01-01", "--format", "json"], catch_exceptions=False)
    hits = [orjson.loads(line) for line in found.output.splitlines() if line.startswith("{")]
    assert hits and {h["p_log_type"] for h in hits} == {LOG_TYPE}

    summary = compact(lake, now=dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert summary.partitions_compacted and not summary.errors
    assert files_log_types(tmp_path) == {LOG_TYPE}
