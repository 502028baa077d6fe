"""The graphlake command line, run through click's runner (the same entry point as the console script)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import orjson
from click.testing import CliRunner

from shared.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"


def golden_alerts(provider: str) -> list[dict]:
    return orjson.loads((GOLDEN / f"{provider}.input.json").read_bytes())


def run(*args: str, input: bytes | None = None, env: dict | None = None):
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def test_normalize_json_lines_lands_good_lines_and_quarantines_the_bad_one(tmp_path):
    alerts = golden_alerts("identity")
    lines = b"\n".join([orjson.dumps(a) for a in alerts] + [b"{not json"]) + b"\n"
    result = run("normalize", "-", "--lake", str(tmp_path / "lake"), "--state", str(tmp_path / "state"),
                 "--source-id", "backfill", input=lines)
    assert result.exit_code == 1
    assert f"{len(alerts)} rows" in result.output and "1 quarantined" in result.output
    [doc] = [orjson.loads(p.read_bytes()) for p in (tmp_path / "state" / "quarantine").rglob("*.json")]
    assert doc["metadata"]["line"] == len(alerts) + 1 and "not JSON" in doc["error"]
    query = run("query", "--lake", str(tmp_path / "lake"), "--format", "json",
                "SELECT DISTINCT p_source_id FROM security_alerts")
    assert [json.loads(line) for line in query.output.splitlines()] == [{"p_source_id": "backfill"}]


def test_normalize_a_graph_response_page(tmp_path):
    alerts = golden_alerts("office365") + golden_alerts("sentinel")
    page = tmp_path / "page.json"
    page.write_bytes(orjson.dumps({"@odata.context": "…", "value": alerts}, option=orjson.OPT_INDENT_2))
    result = run("normalize", str(page), "--lake", str(tmp_path / "lake"), "--state", str(tmp_path / "state"))
    assert result.exit_code == 0, result.output
    query = run("query", "--lake", str(tmp_path / "lake"), "--format", "csv",
                "SELECT id FROM security_alerts ORDER BY id")
    rows = list(csv.reader(io.StringIO(query.output)))
    assert rows[0] == ["id"] and sorted(r[0] for r in rows[1:]) == sorted(a["id"] for a in alerts)
    # The page's indentation is not kept: each alert's JSON columns are its values, compacted.
    evidence = run("query", "--lake", str(tmp_path / "lake"), "--format", "json",
                   "SELECT id, evidence FROM security_alerts")
    by_id = {doc["id"]: doc["evidence"] for doc in map(orjson.loads, evidence.output.splitlines())}
    assert by_id == {a["id"]: orjson.dumps(a["evidence"]).decode() for a in alerts}


def test_query_prints_a_table_and_bad_sql_in_one_line(tmp_path):
    run("normalize", "-", "--lake", str(tmp_path), "--state", str(tmp_path / "state"),
        input=b"\n".join(orjson.dumps(a) for a in golden_alerts("endpoint")))
    table = run("query", "--lake", str(tmp_path), "SELECT count(*) AS n FROM security_alerts")
    assert table.output.splitlines()[0].strip() == "n"
    assert table.output.splitlines()[2].strip() == str(len(golden_alerts("endpoint")))
    bad = run("query", "--lake", str(tmp_path), "SELECT nope FROM security_alerts")
    assert bad.exit_code == 2 and bad.output.startswith("graphlake: query failed") and bad.output.count("\n") == 1


def test_pull_without_a_tenant_says_which_setting_in_one_line(tmp_path):
    result = run("pull", "--once", env={"GRAPH_TENANT_ID": "", "GRAPH_SOURCES": "", "STATE_URL": str(tmp_path)})
    assert result.exit_code == 2
    assert result.output == "graphlake: GRAPH_TENANT_ID is not set (or list tenants in GRAPH_SOURCES)\n"


def test_pull_backfill_since_into_the_local_lake(make_pipeline):
    pipe = make_pipeline(alerts=120, days=3)
    env = {**pipe.env, "PULL_LOOKBACK_DAYS": "0.5"}
    result = run("pull", "--since", "4d", env=env)
    assert result.exit_code == 0, result.output
    [summary] = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert summary["sent"] == 120
    assert len(set(pipe.lake_row_ids())) == 120


def test_csv_writes_lists_and_objects_as_json(tmp_path):
    alerts = golden_alerts("endpoint")
    run("normalize", "-", "--lake", str(tmp_path), "--state", str(tmp_path / "state"),
        input=b"\n".join(orjson.dumps(a) for a in alerts))
    query = run("query", "--lake", str(tmp_path), "--format", "csv",
                "SELECT id, mitreTechniques, p_any_ip_addresses, {'a': [1, 2]} AS nested, NULL AS nothing "
                "FROM security_alerts ORDER BY id")
    rows = list(csv.DictReader(io.StringIO(query.output)))
    assert [r["id"] for r in rows] == sorted(a["id"] for a in alerts)
    by_id = {a["id"]: a for a in alerts}
    for row in rows:
        assert json.loads(row["mitreTechniques"]) == by_id[row["id"]]["mitreTechniques"]
        assert isinstance(json.loads(row["p_any_ip_addresses"]), list)
        assert json.loads(row["nested"]) == {"a": [1, 2]} and row["nothing"] == ""


def test_every_option_of_every_command_says_what_it_does():
    import click

    missing = [f"{name} {option.opts[0]}" for name, command in main.commands.items() for option in command.params
               if isinstance(option, click.Option) and not option.help]
    missing += [option.opts[0] for option in main.params if isinstance(option, click.Option) and not option.help]
    assert missing == []
    assert all(command.help for command in main.commands.values())


def test_the_readme_examples_return_rows_on_the_demo_lake(tmp_path):
    import os
    import re
    import shlex

    from shared.cli.demo import run_demo

    lake = tmp_path / "lake"
    saved = dict(os.environ)
    try:  # the demo points this process's environment at its simulator
        run_demo(str(lake), str(tmp_path / "state"), 3000, 7, show=lambda columns, rows: None, say=lambda line: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    readme = (GOLDEN.parent.parent / "README.md").read_text()
    examples = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()
                if re.match(r"(\.venv/bin/)?graphlake (search|query) --lake \.demo/lake ", line)]
    assert len(examples) >= 6
    for line in examples:
        args = [str(lake) if arg == ".demo/lake" else arg for arg in shlex.split(line, comments=True)[1:]]
        out = run(*args)
        assert out.exit_code == 0, (line, out.output)
        if args[0] == "search":
            assert re.search(r"^[1-9]\d* hits? in ", out.output, re.M), (line, out.output)
        else:
            assert re.search(r"^\(([1-9]\d*) rows?\)$", out.output, re.M) or out.output.startswith("{"), (line, out.output)


def test_index_check_is_not_refused_for_a_bad_setting_it_does_not_read(tmp_path):
    # Like normalize and replay: a bad pull setting must not stop a check of the lake's indexes.
    lake = tmp_path / "lake"
    lake.mkdir()
    result = CliRunner().invoke(main, ["index", "check", "--lake", str(lake)], env={"PULL_PAGE_SIZE": "5000"})
    assert (result.exit_code, result.output.splitlines()[-1]) == (
        0, "0 closed partitions checked, 0 indexes not OK, 0 rebuilt, 0 removed"), result.output
    bad_grace = CliRunner().invoke(main, ["index", "check", "--lake", str(lake)], env={"COMPACT_GRACE_DAYS": "-1"})
    assert bad_grace.exit_code == 2 and "COMPACT_GRACE_DAYS" in bad_grace.output
