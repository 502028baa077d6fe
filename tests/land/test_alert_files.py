"""Every form an alert export comes in lands the same rows: `graphlake normalize` on files as users have them.

Microsoft's own documentation examples are fixtures (tests/fixtures, from microsoftgraph/microsoft-graph-docs-contrib):
the `security-alert-get` example response as published, and the alert resource's JSON representation, a template
whose values are placeholders. The other alerts are the normalizer's golden inputs.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.read.query import connect

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = REPO / "normalizers" / "golden"
MS_EXAMPLE = FIXTURES / "security-alert-get.json"  # 158 lines, pretty-printed, one alert
MS_TEMPLATE = FIXTURES / "security-alert-resource.json"


def golden(*providers: str) -> list[dict]:
    return [alert for p in providers for alert in orjson.loads((GOLDEN / f"{p}.input.json").read_bytes())]


ALERTS = golden("endpoint", "identity", "office365", "sentinel")
IDS = sorted(a["id"] for a in ALERTS)
EXAMPLE_ID = "da637578995287051192_756343937"


def pretty(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def lines(values) -> bytes:
    return b"\n".join(orjson.dumps(v) for v in values) + b"\n"


def page(values) -> dict:
    return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2", "value": values}


def utf16(data: bytes, codec: str = "utf-16-le", bom: bytes = b"\xff\xfe") -> bytes:
    return bom + data.decode("utf-8").encode(codec)


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def normalize(tmp_path: Path, *sources: str, input: bytes | None = None, extra: tuple[str, ...] = ()):
    return run("normalize", *sources, "--lake", str(tmp_path / "lake"), "--state", str(tmp_path / "state"), *extra,
               input=input)


def normalize_file(tmp_path: Path, data: bytes, name: str = "export.json", extra: tuple[str, ...] = ()):
    """The file `name` holding `data`, and what `graphlake normalize` of it did."""
    source = tmp_path / name
    source.write_bytes(data)
    return source, normalize(tmp_path, str(source), extra=extra)


def lake_ids(tmp_path: Path) -> list[str]:
    if not (tmp_path / "lake").is_dir():
        return []
    return sorted(r[0] for r in connect(str(tmp_path / "lake")).execute("SELECT id FROM security_alerts").fetchall())


def quarantined(tmp_path: Path) -> list[dict]:
    return [orjson.loads(p.read_bytes()) for p in sorted((tmp_path / "state").rglob("quarantine/**/*.json"))]


FORMS = {
    "pretty alert (Microsoft's example)": (MS_EXAMPLE.read_bytes(), [EXAMPLE_ID]),
    "one-line alert": (orjson.dumps(ALERTS[0]), [ALERTS[0]["id"]]),
    "pretty page": (pretty(page(ALERTS)), IDS),
    "one-line page": (orjson.dumps(page(ALERTS)), IDS),
    "pretty array": (pretty(ALERTS), IDS),
    "one-line array": (orjson.dumps(ALERTS), IDS),
    "json lines of alerts": (lines(ALERTS), IDS),
    "json lines of pages, one empty": (lines([page(ALERTS[:3]), page([]), page(ALERTS[3:])]), IDS),
    "json lines, CRLF and blank lines": (b"\r\n\r\n".join(orjson.dumps(a) for a in ALERTS) + b"\r\n", IDS),
    "utf-8 BOM, pretty alert": (b"\xef\xbb\xbf" + MS_EXAMPLE.read_bytes(), [EXAMPLE_ID]),
    "utf-8 BOM, json lines": (b"\xef\xbb\xbf" + lines(ALERTS), IDS),
    "utf-8 BOM, array": (b"\xef\xbb\xbf" + pretty(ALERTS), IDS),
    "utf-16le (Windows PowerShell Out-File)": (utf16(pretty(ALERTS)), IDS),
    "utf-16le json lines": (utf16(lines(ALERTS)), IDS),
    "utf-16be page": (utf16(pretty(page(ALERTS)), "utf-16-be", b"\xfe\xff"), IDS),
    "gzip json lines": (gzip.compress(lines(ALERTS)), IDS),
    "gzip utf-16 pretty alert": (gzip.compress(utf16(MS_EXAMPLE.read_bytes())), [EXAMPLE_ID]),
    "empty page": (orjson.dumps(page([])), []),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_input_form_lands_exactly_its_alerts(tmp_path: Path, form: str) -> None:
    data, expected = FORMS[form]
    # The name says nothing about the content: gzip is found by its magic bytes, UTF-16 by its byte-order mark.
    _, result = normalize_file(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert lake_ids(tmp_path) == sorted(expected)
    assert quarantined(tmp_path) == []
    first = result.output.splitlines()[0]
    assert first.startswith(f"{len(expected)} record") and f"1 file: {len(expected)} row" in first


def test_stdin_reads_every_form_too(tmp_path: Path) -> None:
    result = normalize(tmp_path, "-", input=gzip.compress(utf16(pretty(page(ALERTS)))))
    assert result.exit_code == 0, result.output
    assert lake_ids(tmp_path) == IDS


def test_several_files_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(MS_EXAMPLE.read_bytes())
    (tmp_path / "b.jsonl").write_bytes(lines(ALERTS))
    result = normalize(tmp_path, str(tmp_path / "a.json"), str(tmp_path / "b.jsonl"))
    assert result.exit_code == 0, result.output
    assert lake_ids(tmp_path) == sorted([EXAMPLE_ID, *IDS])
    assert result.output.startswith(f"{len(IDS) + 1} records read from 2 files: {len(IDS) + 1} rows")


# What each refused document looked like, as the quarantine reason says it.
REFUSED = {
    "the alert resource's template": (MS_TEMPLATE.read_bytes(), "documentation template"),
    "a template line": (orjson.dumps({**ALERTS[0], "id": "String (identifier)"}), "documentation template"),
    "timestamps that are not times": (orjson.dumps({**ALERTS[0], "createdDateTime": "String (timestamp)",
                                                    "lastUpdateDateTime": "yesterday"}), "not a time"),
    "a wrapper object": (pretty({"alerts": ALERTS[:2]}), "wrapper object"),
    "the v1 page of one object": (pretty({"value": ALERTS[0]}), "wrapper object"),
    "a list of pages": (pretty([page(ALERTS[:2]), page(ALERTS[2:4])]), "list of Graph pages"),
    "a PowerShell SDK object": (pretty({"Id": "x", "Title": "t", "CreatedDateTime": "2024-01-01T00:00:00Z",
                                        "AdditionalProperties": {}}), "PowerShell"),
    "a JSON string": (b'"just text"\n', "a JSON string, not an alert"),
    "a truncated pretty document": (MS_EXAMPLE.read_bytes()[:2000], "not JSON"),
}


@pytest.mark.parametrize("shape", REFUSED)
def test_a_document_that_is_not_an_alert_is_quarantined_saying_what_it_looked_like(tmp_path: Path, shape: str) -> None:
    data, reason = REFUSED[shape]
    source, result = normalize_file(tmp_path, data, "odd.json")
    assert result.exit_code == 1, result.output
    assert lake_ids(tmp_path) == []
    docs = quarantined(tmp_path)
    assert docs and all(reason in doc["error"] for doc in docs), [d["error"] for d in docs]
    assert docs[0]["metadata"]["file"] == str(source) and docs[0]["metadata"]["line"] == 1
    # One quarantined copy per document, not one per line of a pretty-printed one.
    assert len(docs) <= 2
    assert reason in result.output and f"{source}:1" in result.output


def test_the_summary_counts_each_reason_with_its_first_location_and_where_copies_are(tmp_path: Path) -> None:
    bad = [b"{not json", orjson.dumps({**ALERTS[1], "id": "String (identifier)"}), b"{not json", b"[1, 2]"]
    body = [orjson.dumps(ALERTS[0]), bad[0], bad[1], orjson.dumps(ALERTS[2]), bad[2], bad[3],
            orjson.dumps(page([]))]
    source, result = normalize_file(tmp_path, b"\n".join(body) + b"\n", "mixed.jsonl")
    assert result.exit_code == 1
    out = result.output.splitlines()
    assert out[0] == "6 records read from 1 file: 2 rows landed in " \
                     f"{tmp_path / 'lake'}, 0 duplicates, 4 quarantined"
    assert lake_ids(tmp_path) == sorted([ALERTS[0]["id"], ALERTS[2]["id"]])
    reasons = {line.split(" × ")[1].rsplit("  first at ", 1)[0]: line for line in out[1:] if " × " in line}
    not_json = next(line for reason, line in reasons.items() if reason.startswith("not JSON"))
    assert not_json.strip().startswith("2 × ") and not_json.endswith(f"first at {source}:2")
    template = next(line for reason, line in reasons.items() if "template" in reason)
    assert template.strip().startswith("1 × ") and template.endswith(f"first at {source}:3")
    assert len(reasons) == 3
    # The two identical lines are one quarantined copy: the summary says so, and where the copies are.
    assert len(quarantined(tmp_path)) == 3
    assert out[-1] == f"quarantined copies: 3 documents under {tmp_path / 'state'}/quarantine/"


def test_quiet_and_verbose(tmp_path: Path) -> None:
    _, quiet = normalize_file(tmp_path, lines(ALERTS), extra=("--quiet",))
    assert quiet.exit_code == 0 and quiet.output == ""
    source, verbose = normalize_file(tmp_path, lines(ALERTS) + b"oops\nagain\n", extra=("--verbose",))
    assert verbose.exit_code == 1
    assert f"{source}:{len(ALERTS) + 1}: not JSON" in verbose.output
    assert f"{source}:{len(ALERTS) + 2}: not JSON" in verbose.output
    quiet = normalize(tmp_path, str(source), extra=("-q",))
    assert quiet.exit_code == 1 and quiet.stdout == "" and quiet.stderr.count("\n") == 1
    assert "2 quarantined" in quiet.stderr


def test_an_empty_file_lands_nothing_and_says_so(tmp_path: Path) -> None:
    _, result = normalize_file(tmp_path, b"\xef\xbb\xbf\n")
    assert result.exit_code == 0 and result.output.startswith("0 records read from 1 file")


@pytest.mark.parametrize("case", ["stdin closed", "no such file", "a folder"])
def test_an_unreadable_source_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    source = {"stdin closed": "-", "no such file": str(tmp_path / "nope.json"), "a folder": str(tmp_path)}[case]
    # A real process: click's test runner always gives a stdin.
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "normalize", source, "--lake", str(tmp_path / "lake"),
                           "--state", str(tmp_path / "state")], capture_output=True, text=True, cwd=REPO,
                          stdin=subprocess.DEVNULL if case != "stdin closed" else None,
                          preexec_fn=(lambda: os.close(0)) if case == "stdin closed" else None)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(("graphlake: ", "Error: ")) and proc.stdout == ""


def test_a_page_item_that_is_not_an_object_is_refused_alone(tmp_path: Path) -> None:
    data = pretty(page([ALERTS[0], "stray text", ALERTS[1], {**ALERTS[2], "id": "String (identifier)"}]))
    _, result = normalize_file(tmp_path, data)
    assert result.exit_code == 1
    assert lake_ids(tmp_path) == sorted([ALERTS[0]["id"], ALERTS[1]["id"]])
    stray, template = sorted(quarantined(tmp_path), key=lambda doc: doc["metadata"]["line"])
    # Each is located on the line where it starts in the pretty-printed page.
    assert "a JSON string in a Graph page's value" in stray["error"]
    assert stray["metadata"]["line"] == data[:data.index(b'"stray text"')].count(b"\n") + 1
    assert "documentation template" in template["error"]
    opening = data.rindex(b"{", 0, data.index(b'"String (identifier)"'))
    assert template["metadata"]["line"] == data[:opening].count(b"\n") + 1


def test_json_lines_with_a_broken_first_line_land_the_good_lines(tmp_path: Path) -> None:
    # A cut-off object, then junk, then good alerts: each bad line alone goes to quarantine, every alert lands.
    good = ALERTS[:2]
    data = orjson.dumps(ALERTS[2])[:120] + b"\n" + b"<html>503 Service Unavailable</html>\n" + lines(good)
    _, result = normalize_file(tmp_path, data, "export.jsonl")
    assert result.exit_code == 1, result.output
    assert lake_ids(tmp_path) == sorted(a["id"] for a in good)
    assert sorted(doc["metadata"]["line"] for doc in quarantined(tmp_path)) == [1, 2]


def test_a_one_line_document_that_does_not_parse_is_not_called_several_lines(tmp_path: Path) -> None:
    _, result = normalize_file(tmp_path, orjson.dumps(ALERTS[0])[:-5] + b"\n")
    assert result.exit_code == 1
    [doc] = quarantined(tmp_path)
    assert doc["error"].startswith("not JSON") and "several lines" not in doc["error"]
