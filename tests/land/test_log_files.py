"""`graphlake normalize` on Azure Monitor records as users have them: Event Hub bodies saved to files, the JSON lines
archive-to-storage writes (PT1H.json), arrays, mixed with alerts; each record routed to its table, a bad one
quarantined with its file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from click.testing import CliRunner

from normalizers.logs import TABLES
from shared.cli import main
from shared.core.storage import open_store
from shared.land.lake_writer import read_table
from tests.log_records import body, every_category, golden

ALERT = orjson.loads((Path(__file__).resolve().parents[2] / "normalizers" / "golden" /
                      "identity.input.json").read_bytes())[0]


def normalize(tmp_path: Path, *files: str):
    return CliRunner().invoke(main, ["normalize", "--lake", str(tmp_path / "lake"), "--state",
                                     str(tmp_path / "state"), *files])


def landed(tmp_path: Path) -> dict[str, int]:
    lake = open_store(str(tmp_path / "lake"))
    return {table: read_table(lake, table).num_rows for table in (*TABLES, "security_alerts")
            if read_table(lake, table).num_rows}


def test_event_hub_bodies_archive_lines_and_alerts_land_in_their_tables(tmp_path: Path) -> None:
    records = every_category()
    (tmp_path / "hub.json").write_bytes(orjson.dumps({"records": records[:8]}, option=orjson.OPT_INDENT_2))
    # archive-to-storage: one record per line, gzip-compressed as some copy tools leave it.
    (tmp_path / "PT1H.json.gz").write_bytes(gzip.compress(b"\n".join(orjson.dumps(r) for r in records[8:]) + b"\n"))
    (tmp_path / "alert.json").write_bytes(orjson.dumps(ALERT))
    result = normalize(tmp_path, str(tmp_path / "hub.json"), str(tmp_path / "PT1H.json.gz"),
                       str(tmp_path / "alert.json"))
    assert result.exit_code == 0, result.output
    assert landed(tmp_path) == {**{table: len(golden(table)) for table in TABLES}, "security_alerts": 1}
    assert result.output.startswith(f"{len(records) + 1} records read from 3 files: {len(records) + 1} rows")
    lake = open_store(str(tmp_path / "lake"))
    assert set(read_table(lake, "entra_signin_logs").column("p_source_label").to_pylist()) == {"Azure Monitor"}
    assert set(read_table(lake, "security_alerts").column("p_source_label").to_pylist()) == {"Microsoft Graph"}


def test_a_bad_record_is_quarantined_with_its_line_and_the_rest_land(tmp_path: Path) -> None:
    records = golden("entra_audit_logs")
    lines = [orjson.dumps(records[0]), orjson.dumps({"time": "2026-06-02T08:00:00Z", "category": "StorageWrite"}),
             orjson.dumps(records[1]), orjson.dumps(records[1])]
    (tmp_path / "PT1H.json").write_bytes(b"\n".join(lines) + b"\n")
    result = normalize(tmp_path, str(tmp_path / "PT1H.json"))
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == \
        f"4 records read from 1 file: 2 rows landed in {tmp_path / 'lake'}, 1 duplicate, 1 quarantined"
    assert f"{tmp_path / 'PT1H.json'}:2" in result.output and "'StorageWrite' is not one graphlake lands" in \
        result.output
    assert landed(tmp_path) == {"entra_audit_logs": 2}


def test_a_body_whose_records_is_not_a_list_is_refused(tmp_path: Path) -> None:
    (tmp_path / "odd.json").write_bytes(b'{"records": "none today"}')
    (tmp_path / "ok.json").write_bytes(body(golden("entra_risk_events")))
    result = normalize(tmp_path, str(tmp_path / "odd.json"), str(tmp_path / "ok.json"))
    assert result.exit_code == 1
    assert 'an Azure Monitor body whose "records" holds a JSON string, not a list of records' in result.output
    assert landed(tmp_path) == {"entra_risk_events": 4}


def test_an_alert_without_its_id_is_refused_as_an_alert_not_routed_as_a_record(tmp_path: Path) -> None:
    broken = {key: value for key, value in ALERT.items() if key != "id"}
    (tmp_path / "broken.json").write_bytes(orjson.dumps(broken))
    result = normalize(tmp_path, str(tmp_path / "broken.json"))
    assert result.exit_code == 1
    assert "alert has no id" in result.output and "not one graphlake lands" not in result.output
