"""One resolution of where the lake and the state are, for every command: --lake / --state, else LAKE_URL /
STATE_URL, else ./lake and ./state; a command not given the option says which it used."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from shared.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "normalizers" / "golden"


@pytest.fixture
def settings_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # ./lake and ./state would be here
    env = {"LAKE_URL": str(tmp_path / "configured-lake"), "STATE_URL": str(tmp_path / "configured-state")}
    alerts = (GOLDEN / "identity.input.json").read_bytes()
    out = CliRunner().invoke(main, ["normalize", "-"], input=alerts, env=env)
    assert out.exit_code == 0, out.output
    assert f"graphlake: lake {env['LAKE_URL']} (from LAKE_URL)" in out.stderr
    assert len(orjson.loads(alerts)) and (tmp_path / "configured-lake").is_dir() and not (tmp_path / "lake").exists()
    return env


def test_normalize_query_search_and_status_follow_the_settings(settings_lake: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    query = runner.invoke(main, ["query", "--format", "json", "SELECT count(*) AS n FROM security_alerts"],
                          env=settings_lake)
    assert query.exit_code == 0 and orjson.loads(query.stdout) == {"n": 3}
    assert "(from LAKE_URL)" in query.stderr
    search = runner.invoke(main, ["search", "--any", "nobody@example.invalid", "--since", "3650d"], env=settings_lake)
    assert search.exit_code == 0 and "(from LAKE_URL)" in search.stderr
    status = runner.invoke(main, ["status"], env=settings_lake)
    assert f"graphlake: state {settings_lake['STATE_URL']} (from STATE_URL)" in status.stderr
    assert not (tmp_path / "lake").exists() and not (tmp_path / "state").exists()


def test_the_default_is_said_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["normalize", "-"], input=(GOLDEN / "identity.input.json").read_bytes(),
                             env={"LAKE_URL": None, "STATE_URL": None})
    assert out.exit_code == 0
    assert "graphlake: lake lake (the default; --lake or LAKE_URL names another)" in out.stderr
    assert (tmp_path / "lake").is_dir()
