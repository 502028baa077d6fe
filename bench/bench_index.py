"""The indicator index on a year-long generated lake: a year-long IoC sweep with and without it, its size, and what it
adds to compaction.

    .venv/bin/python bench/bench_index.py [--rows 100000000] [--days 365] [--sample-days 3] [--repeat 5] [--work DIR]
                                          [--population 1.0]

1. Generates a lake of --rows rows over --days days, Arrow built directly (normalizing 100M rows through the real
   normalizer would take hours), a day at a time so memory stays at one day's rows: `security_alerts` rows of the
   real schema (normalizers/schema.py; 8% of the rows, with an evidence JSON of ~1 KB and every p_any list) and
   `entra_signin_logs`, sign-in-shaped rows (92%: user, app, IP, location, device, status; p_any_ip_addresses,
   usernames, emails, actor ids, domain names). Values come from a tenant's populations: 50,000 users who sign in
   mostly from their usual addresses, 2,000,000 other addresses, a million file hashes, 100,000 domains. One
   indicator, an IP, is planted in a few rows of both tables on 12 days spread over the year: the IoC swept for.
   Each day of each table is one sorted file (what compaction leaves), so the lake is already compacted.
2. `shared.ops.compact.compact` (grace 0) finds every closed partition without an index and writes it from the
   lake: the time to index a year after the fact, and the index's size against the lake's.
3. The IoC swept over the whole range in-process (open, list, search: as `graphlake search` runs it), with the
   index (best and median of --repeat) and with --no-index (best of 2). The hits must be identical (the bench
   stops if not). Then the sweep's time in the index's reads and outside them: the floor no index lowers.
4. Compaction with and without the index, on --sample-days days generated the way the normalizer leaves them
   (each partition in 8 unsorted files, 1% of rows delivered twice), compacted twice each way on fresh copies,
   alternating: the index's share of compaction's time. Every day of the lake has the same shape, so the ratio
   holds for the year.

Prints figures, each with the load averages at its end (the machine is shared: a figure taken under load says so);
asserts nothing about speed. A small --rows (the test's smoke size) runs the same code path.

`--generate DIR` runs step 1 alone, into DIR (kept), for `--lake DIR` runs; `--lake DIR --sweep-only` runs step 3
alone on a lake a full run (or `graphlake index rebuild --grace-days 0`) left indexed: the sweep again in a minute,
e.g. at a quiet moment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from normalizers.schema import PARQUET_WRITE_OPTIONS, SCHEMA  # noqa: E402
from shared.core.layout import partition_path  # noqa: E402
from shared.core.storage import open_store  # noqa: E402
from shared.ops.compact import ROW_GROUP_BYTES, ROW_GROUP_ROWS, compact  # noqa: E402
from shared.ops.compact_merge import group_rows, value_bytes  # noqa: E402
from shared.read.query import connect  # noqa: E402
from shared.read.search import search, terms_for  # noqa: E402

ALERTS, SIGNINS = "security_alerts", "entra_signin_logs"
ALERT_SHARE = 0.08
IOC = "198.51.100.77"
FIRST_DAY = dt.date(2025, 1, 1)
UTC = dt.UTC
LIST = pa.list_(pa.string())
SIGNIN_SCHEMA = pa.schema([
    ("id", pa.string()), ("createdDateTime", pa.timestamp("us", tz="UTC")), ("userPrincipalName", pa.string()),
    ("userId", pa.string()), ("appDisplayName", pa.string()), ("appId", pa.string()), ("ipAddress", pa.string()),
    ("clientAppUsed", pa.string()), ("correlationId", pa.string()), ("conditionalAccessStatus", pa.string()),
    ("isInteractive", pa.bool_()), ("resourceDisplayName", pa.string()), ("userAgent", pa.string()),
    ("status", pa.string()), ("location", pa.string()), ("deviceDetail", pa.string()),
    ("appliedConditionalAccessPolicies", pa.string()), ("riskLevelDuringSignIn", pa.string()),
    ("p_log_type", pa.string()), ("p_row_id", pa.string()), ("p_event_time", pa.timestamp("us", tz="UTC")),
    ("p_parse_time", pa.timestamp("us", tz="UTC")),
    ("p_any_ip_addresses", LIST), ("p_any_usernames", LIST), ("p_any_emails", LIST), ("p_any_actor_ids", LIST),
    ("p_any_domain_names", LIST)])


class Pools:
    """A tenant's populations, as Arrow string arrays that rows take from."""

    def __init__(self, rng: np.random.Generator, scale: float = 1.0) -> None:
        def n(full: int) -> int:
            return max(100, round(full * scale))

        users = n(50_000)
        self.upn = pa.array([f"user{n:05d}@contoso{n % 7}.com" for n in range(users)])
        self.user_id = pa.array([_guid(rng) for _ in range(users)])
        # Each user's usual addresses: three of 150,000 office, home and VPN addresses.
        self.usual = rng.integers(0, n(150_000), size=(users, 3))
        self.home_ip = pa.array([f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}" for k in range(n(150_000))])
        self.other_ip = pa.array([f"{20 + (k >> 24) % 180}.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"
                                  for k in rng.integers(0, 1 << 31, size=n(2_000_000))])
        self.sha256 = pa.array([rng.bytes(32).hex() for _ in range(n(1_000_000))])
        self.sha1 = pa.array([rng.bytes(20).hex() for _ in range(n(300_000))])
        self.domain = pa.array([f"{rng.bytes(5).hex()}.example{k % 50}.net" for k in range(n(100_000))])
        self.device = pa.array([rng.bytes(20).hex() for _ in range(n(20_000))])
        self.apps = pa.array(["Office 365 Exchange Online", "Microsoft Teams", "Azure Portal", "SharePoint Online",
                              "Microsoft Graph", "Outlook Mobile", "OneDrive", "Power BI", "Visual Studio Code",
                              "Azure CLI"])
        self.app_ids = pa.array([_guid(rng) for _ in range(10)])
        cities = [("Seattle", "WA", "US", 47.6, -122.3), ("London", "England", "GB", 51.5, -0.1),
                  ("Paris", "Ile-de-France", "FR", 48.9, 2.4), ("Sydney", "NSW", "AU", -33.9, 151.2),
                  ("Tokyo", "Tokyo", "JP", 35.7, 139.7), ("Berlin", "Berlin", "DE", 52.5, 13.4),
                  ("Toronto", "Ontario", "CA", 43.7, -79.4), ("Mumbai", "Maharashtra", "IN", 19.1, 72.9)]
        self.locations = pa.array([f'{{"city":"{c}","state":"{s}","countryOrRegion":"{k}","geoCoordinates":'
                                   f'{{"altitude":null,"latitude":{la},"longitude":{lo}}}}}' for c, s, k, la, lo in cities])
        agents = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
                  "Safari/537.36 Edg/{v}.0.0.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                  "(KHTML, like Gecko) Version/17.{v} Safari/605.1.15", "Microsoft Office/16.0 (Windows NT 10.0; "
                  "Microsoft Outlook 16.0.{v}; Pro)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X)"]
        self.agents = pa.array([a.format(v=v) for a in agents for v in range(60, 135)])
        # A tenant's conditional access policies, and the results a sign-in gets from them.
        policies = [(_guid(rng), name) for name in ("Require MFA for admins", "Block legacy authentication",
                    "Require compliant device", "Require MFA off network", "Block high-risk sign-ins",
                    "Session lifetime for unmanaged devices", "Require terms of use", "Block countries not served",
                    "Require MFA for Azure management", "App protection for mobile", "Guest MFA",
                    "Require password change on high user risk")]
        results = ["success", "notApplied", "notEnabled", "failure", "reportOnlySuccess", "reportOnlyNotApplied"]
        self.policies = pa.array(["[" + ",".join(
            f'{{"id":"{pid}","displayName":"{name}","enforcedGrantControls":["Mfa"],'
            f'"enforcedSessionControls":[],"result":"{results[int(r)]}"}}'
            for (pid, name), r in zip(policies, rng.integers(0, len(results), size=len(policies)))) + "]"
            for _ in range(256)])
        self.statuses = pa.array(['{"errorCode":0,"failureReason":"Other.","additionalDetails":null}'] * 18 +
                                 ['{"errorCode":50126,"failureReason":"Error validating credentials due to invalid '
                                  'username or password.","additionalDetails":"The user didn\'t enter the right '
                                  'credentials."}', '{"errorCode":50074,"failureReason":"Strong Authentication is '
                                  'required.","additionalDetails":"MFA required in Azure AD"}'])
        words = ("sign-in", "account", "device", "process", "credential", "suspicious", "observed", "file", "token",
                 "mailbox", "attacker", "lateral", "movement", "executed", "detected", "policy", "anomalous", "user")
        self.descriptions = pa.array([" ".join(np.array(words)[rng.integers(0, len(words), size=90)])
                                      for _ in range(300)])
        self.actions = pa.array(["1. " + " ".join(np.array(words)[rng.integers(0, len(words), size=60)])
                                 for _ in range(100)])
        self.resources = pa.array(["Office 365 Exchange Online", "Microsoft Graph", "Windows Azure Service "
                                   "Management API", "Office 365 SharePoint Online", "Microsoft Teams Services"])


def _guid(rng: np.random.Generator) -> str:
    h = rng.bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _one(values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32)), values)


def _lists(*columns: pa.Array) -> pa.Array:
    """Each row's values of the columns, as one list per row (nulls dropped)."""
    n = len(columns[0])
    values = pa.concat_arrays([pa.array(np.arange(n) * len(columns) + k) for k in range(len(columns))])
    interleaved = pa.concat_arrays(list(columns)).take(pc.sort_indices(values))
    offsets = pa.array(np.arange(0, n * len(columns) + 1, len(columns), dtype=np.int32))
    lists = pa.ListArray.from_arrays(offsets, interleaved)
    return _drop_nulls(lists)


def _drop_nulls(lists: pa.ListArray) -> pa.Array:
    flat, parents = pc.list_flatten(lists), pc.list_parent_indices(lists)
    keep = pc.is_valid(flat)
    flat, parents = flat.filter(keep), parents.filter(keep)
    counts = np.bincount(parents.to_numpy(zero_copy_only=False), minlength=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def _times(rng: np.random.Generator, day: dt.date, n: int) -> pa.Array:
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1_000_000)
    return pa.array(np.sort(start + rng.integers(0, 86_400_000_000, size=n)), pa.timestamp("us", tz="UTC"))


def _ids(prefix: str, day: dt.date, n: int) -> pa.Array:
    return pc.binary_join_element_wise(f"{prefix}{day:%Y%m%d}", pa.array(np.arange(n)).cast(pa.string()), "-")


def _pick(pool: pa.Array, indices: np.ndarray) -> pa.Array:
    """Values of a pool as a dictionary array: no copy of the strings (the long JSON of a sign-in's policies would
    otherwise be copied for every row); parquet stores it as strings."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pool)


def signins(rng: np.random.Generator, pools: Pools, day: dt.date, n: int, plant: int) -> pa.Table:
    def take(pool: pa.Array) -> pa.Array:
        return _pick(pool, rng.integers(0, len(pool), size=n))

    users = rng.integers(0, len(pools.upn), size=n)
    usual = pools.usual[users, rng.integers(0, 3, size=n)]
    ip = pc.if_else(pa.array(rng.random(n) < 0.7), pools.home_ip.take(pa.array(usual)),
                    pools.other_ip.take(pa.array(rng.integers(0, len(pools.other_ip), size=n))))
    times = _times(rng, day, n)
    ip = pc.if_else(pa.array(_burst(rng, times, plant)), IOC, ip)
    upn, user_id = pools.upn.take(pa.array(users)), pools.user_id.take(pa.array(users))
    app = rng.integers(0, len(pools.apps), size=n)
    device = pools.device.take(pa.array(rng.integers(0, len(pools.device), size=n)))
    domain = pc.utf8_slice_codeunits(upn, 10)
    correlation = _guids(rng, n)
    detail = pc.binary_join_element_wise(
        '{"deviceId":"', device, '","displayName":"DESKTOP-', pc.utf8_slice_codeunits(device, 0, 7),
        '","operatingSystem":"Windows10","browser":"Edge 131.0.0","isCompliant":true,"isManaged":true,'
        '"trustType":"Azure AD joined"}', "")
    return pa.table([
        _ids("s", day, n), times, upn, user_id, _pick(pools.apps, app), _pick(pools.app_ids, app),
        ip, pa.array(np.where(rng.random(n) < 0.9, "Browser", "Mobile Apps and Desktop clients")), correlation,
        pa.array(np.where(rng.random(n) < 0.8, "success", "notApplied")), pa.array(rng.random(n) < 0.6),
        take(pools.resources), take(pools.agents), take(pools.statuses), take(pools.locations), detail,
        take(pools.policies), pa.array(np.where(rng.random(n) < 0.98, "none", "medium")),
        pa.array(["Entra.SignIn"] * n), _ids("s", day, n), times, times,
        _one(ip), _one(upn), _one(upn), _lists(user_id, device), _one(domain)], names=SIGNIN_SCHEMA.names)


def _guids(rng: np.random.Generator, n: int) -> pa.Array:
    hexes = pa.array([b.hex() for b in np.frombuffer(rng.bytes(16 * n), dtype="S16")])
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(hexes, 0, 8), pc.utf8_slice_codeunits(hexes, 8, 12),
                                       pc.utf8_slice_codeunits(hexes, 12, 16), pc.utf8_slice_codeunits(hexes, 16, 20),
                                       pc.utf8_slice_codeunits(hexes, 20, 32), "-")


def _burst(rng: np.random.Generator, times: pa.Array, plant: int) -> np.ndarray:
    """`plant` rows of ten minutes of the day: a password spray from one address comes as a burst."""
    mask = np.zeros(len(times), dtype=bool)
    if plant and len(times):
        start = int(rng.integers(0, max(1, len(times) - 1)))
        stamps = times.cast(pa.int64()).to_numpy()
        window = np.nonzero((stamps >= stamps[start]) & (stamps < stamps[start] + 600_000_000))[0]
        mask[rng.choice(window, size=min(plant, len(window)), replace=False)] = True
    return mask


def alerts(rng: np.random.Generator, pools: Pools, day: dt.date, n: int, plant: int) -> pa.Table:
    def take(pool: pa.Array) -> pa.Array:
        return pool.take(pa.array(rng.integers(0, len(pool), size=n)))

    users = rng.integers(0, len(pools.upn), size=n)
    upn, user_id = pools.upn.take(pa.array(users)), pools.user_id.take(pa.array(users))
    times = _times(rng, day, n)
    ip = pc.if_else(pa.array(_burst(rng, times, plant)), IOC, take(pools.other_ip))
    sha256, sha1, domain, device = take(pools.sha256), take(pools.sha1), take(pools.domain), take(pools.device)
    url = pc.binary_join_element_wise("https://", domain, "/login", "")
    evidence = pc.binary_join_element_wise(
        '[{"@odata.type":"#microsoft.graph.security.userEvidence","roles":[],"verdict":"suspicious",'
        '"userAccount":{"accountName":"', upn, '","userPrincipalName":"', upn, '","azureAdUserId":"', user_id,
        '"}},{"@odata.type":"#microsoft.graph.security.ipEvidence","ipAddress":"', ip,
        '","countryLetterCode":"US"},{"@odata.type":"#microsoft.graph.security.fileEvidence","fileDetails":'
        '{"fileName":"payload.exe","filePath":"C:\\\\Users\\\\Public","sha256":"', sha256, '","sha1":"', sha1,
        '"}},{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"', url,
        '"},{"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"', device, '"}]', "")
    alert_ids = _guids(rng, n)
    columns = {
        "providerAlertId": alert_ids, "incidentId": pa.array(rng.integers(1, 10_000_000, size=n)).cast(pa.string()),
        "description": _pick(pools.descriptions, rng.integers(0, len(pools.descriptions), size=n)),
        "recommendedActions": _pick(pools.actions, rng.integers(0, len(pools.actions), size=n)),
        "alertWebUrl": pc.binary_join_element_wise("https://security.microsoft.com/alerts/", alert_ids,
                                                   "?tid=8b1f2c3d-0000-4000-8000-00000000cafe", ""),
        "category": _pick(pa.array(["InitialAccess", "Execution", "CredentialAccess", "Exfiltration"]),
                          rng.integers(0, 4, size=n)),
        "detectionSource": _pick(pa.array(["antivirus", "microsoftDefenderForEndpoint", "customDetection"]),
                                 rng.integers(0, 3, size=n)),
        "id": _ids("a", day, n), "tenantId": pa.array(["8b1f2c3d-0000-4000-8000-00000000cafe"] * n),
        "title": pa.array(np.array(["Suspicious sign-in", "Malware detected", "Phishing URL clicked",
                                    "Pass-the-hash"])[rng.integers(0, 4, size=n)]),
        "severity": pa.array(np.array(["low", "medium", "high"])[rng.integers(0, 3, size=n)]),
        "status": pa.array(np.array(["new", "inProgress", "resolved"])[rng.integers(0, 3, size=n)]),
        "serviceSource": pa.array(np.array(["microsoftDefenderForEndpoint", "microsoftDefenderForOffice365",
                                            "azureAdIdentityProtection"])[rng.integers(0, 3, size=n)]),
        "createdDateTime": times, "lastUpdateDateTime": times, "evidence": evidence,
        "p_log_type": pa.array(["Graph.SecurityAlert"] * n), "p_row_id": _ids("a", day, n), "p_event_time": times,
        "p_parse_time": times, "p_pull_time": times, "p_schema_version": pa.array([2] * n, pa.int32()),
        "p_any_ip_addresses": _one(ip), "p_any_domain_names": _one(domain), "p_any_usernames": _one(upn),
        "p_any_emails": _one(upn), "p_any_sha1_hashes": _one(sha1), "p_any_sha256_hashes": _one(sha256),
        "p_any_urls": _one(url), "p_any_actor_ids": _lists(user_id, device)}
    return pa.table([columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in SCHEMA],
                    names=SCHEMA.names)


def day_rows(rng: np.random.Generator, pools: Pools, day: dt.date, rows: int, plant: bool) -> dict[str, pa.Table]:
    n_alerts = max(1, round(rows * ALERT_SHARE))
    return {ALERTS: alerts(rng, pools, day, n_alerts, 1 if plant else 0),
            SIGNINS: signins(rng, pools, day, rows - n_alerts, 3 if plant else 0)}


def write(path: Path, table: pa.Table, name: str) -> None:
    """As compaction writes a file: the table's options, row groups bounded by rows and by bytes of values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = PARQUET_WRITE_OPTIONS if name == ALERTS else {"compression": "zstd"}
    rows = group_rows(sum(map(_value_bytes, table.columns)), table.num_rows, ROW_GROUP_ROWS, ROW_GROUP_BYTES)
    # Without the Arrow schema, the dictionary columns read back as the strings they hold.
    pq.write_table(table, path, row_group_size=rows, store_schema=False, **options)


def _value_bytes(column: pa.ChunkedArray) -> int:
    if not pa.types.is_dictionary(column.type):
        return value_bytes(column)
    lengths = pc.binary_length(column.chunk(0).dictionary).to_numpy(zero_copy_only=False)
    return int(lengths[column.chunk(0).indices.to_numpy(zero_copy_only=False)].sum()) + 4 * len(column)


def build_lake(lake: Path, pools: Pools, rows: int, days: int, seed: int) -> tuple[float, int]:
    """One sorted file per table and day; seconds and the IoC's planted days."""
    rng = np.random.default_rng(seed)
    planted = set(np.linspace(0, days - 1, min(12, days)).round().astype(int).tolist())
    began = time.perf_counter()
    for number in range(days):
        day = FIRST_DAY + dt.timedelta(days=number)
        per_day = rows // days + (1 if number < rows % days else 0)
        for name, table in day_rows(rng, pools, day, per_day, number in planted).items():
            write(lake / partition_path(name, day) / "part-00000.parquet", table, name)
        if days >= 20 and number % (days // 10) == 0:
            print(f"    day {number + 1} of {days} written ({time.perf_counter() - began:.0f} s)", flush=True)
    return time.perf_counter() - began, len(planted)


def build_sample(lake: Path, pools: Pools, rows_per_day: int, days: int, seed: int) -> None:
    """Days as the normalizer leaves them: 8 files per partition, rows in arrival order, 1% delivered twice."""
    rng = np.random.default_rng(seed)
    for number in range(days):
        day = FIRST_DAY + dt.timedelta(days=number)
        for name, table in day_rows(rng, pools, day, rows_per_day, False).items():
            order = pa.array(rng.permutation(table.num_rows))
            again = pa.array(rng.choice(table.num_rows, size=table.num_rows // 100, replace=False))
            table = pa.concat_tables([table.take(order), table.take(again)])
            for k, start in enumerate(range(0, table.num_rows, -(-table.num_rows // 8))):
                write(lake / partition_path(name, day) / f"part-{k:05d}.parquet",
                      table.slice(start, -(-table.num_rows // 8)), name)


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) if folder.exists() else 0


def sweep(lake: str, since: dt.datetime, until: dt.datetime, use_index: bool) -> tuple[float, object]:
    began = time.perf_counter()
    result = search(connect(lake, with_views=False), terms_for({"ip": [IOC]}), since, until, limit=10_000,
                    use_index=use_index)
    return time.perf_counter() - began, result


def sweep_phases(lake: str, since: dt.datetime, until: dt.datetime) -> tuple[float, float]:
    """One sweep with the index: its time in the index's reads (indicator_index.narrow) and outside them (listing,
    the SQL on the files with hits): the part no index can make faster."""
    from shared.read import indicator_index

    narrow, spent = indicator_index.narrow, []

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return narrow(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    indicator_index.narrow = timed
    try:
        total, _ = sweep(lake, since, until, True)
    finally:
        indicator_index.narrow = narrow
    return sum(spent), total - sum(spent)


def hits_of(result) -> list:
    return sorted((t.table, t.count, tuple(map(str, row))) for t in result.tables for row in t.rows)


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure_sweep(lake: Path, days: int, repeat: int) -> None:
    """The IoC swept over the lake's days with the index (best and median of `repeat`) and without (best of 2);
    stops if the hits differ or there are none."""
    since = dt.datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
    until = since + dt.timedelta(days=days)
    with_index = [sweep(str(lake), since, until, True) for _ in range(repeat)]
    indexed_load = load()
    without = [sweep(str(lake), since, until, False) for _ in range(2)]
    result = with_index[-1][1]
    if any(hits_of(r) != hits_of(result) for _, r in with_index + without):
        raise SystemExit("the hits differ with and without the index")
    hits = sum(t.count for t in result.tables)
    if not hits:
        raise SystemExit("the IoC was not found")
    best, slow = min(s for s, _ in with_index), min(s for s, _ in without)
    for table, use in sorted(result.index.items()):
        print(f"    {table}: {use.from_index} of {use.days} days narrowed by the index, "
              f"{use.files_read} of {use.files_in_range} files read ({use.files_in_part} only in the row groups "
              f"holding a hit)", flush=True)
    print(f"  search --ip {IOC}, {days} days, {hits} hits (identical with and without): with the index "
          f"{best * 1000:,.0f} ms best (median {statistics.median(s for s, _ in with_index) * 1000:,.0f} ms; "
          f"{indexed_load}), --no-index {slow * 1000:,.0f} ms ({load()}): {slow / best:,.0f}x", flush=True)
    phases = [sweep_phases(str(lake), since, until) for _ in range(repeat)]
    print(f"  the same sweep's parts, best of {repeat}: index reads {min(p for p, _ in phases) * 1000:,.0f} ms, the "
          f"rest (listing, SQL on the files with hits) {min(r for _, r in phases) * 1000:,.0f} ms, which alone is "
          f"{slow / min(r for _, r in phases):,.1f}x of --no-index ({load()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="rows of the lake, both tables")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sample-days", type=int, default=3, help="days compacted with and without the index")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--population", type=float, default=1.0,
                        help="the tenant's users, addresses, hashes and domains, as a share of the default sizes")
    parser.add_argument("--work", help="folder for the lakes (default: a temporary one)")
    parser.add_argument("--lake", help="a lake this bench generated before (same --rows, --days, --seed, --population;"
                                       " without indexes), used instead of generating one: generation takes most of"
                                       " the full run")
    parser.add_argument("--generate", metavar="DIR", help="only generate the lake, into DIR (kept), for --lake")
    parser.add_argument("--sweep-only", action="store_true",
                        help="with --lake of an indexed lake: only the sweep, with and without the index")
    args = parser.parse_args()
    if args.generate:
        seconds, planted = build_lake(Path(args.generate), Pools(np.random.default_rng(args.seed), args.population),
                                      args.rows, args.days, args.seed)
        print(f"  generated in {seconds:.0f} s into {args.generate}; IoC planted on {planted} days ({load()})")
        return
    if args.sweep_only:
        if not args.lake or not (Path(args.lake) / "_index").exists():
            raise SystemExit("--sweep-only needs --lake DIR of a lake with its indexes (a full run's, or one "
                             "`graphlake index rebuild --grace-days 0` indexed)")
        measure_sweep(Path(args.lake), args.days, args.repeat)
        return

    with tempfile.TemporaryDirectory(dir=args.work, prefix="bench-index-") as work:
        work = Path(work)
        print(f"{args.rows:,} rows over {args.days} days ({ALERT_SHARE:.0%} {ALERTS}, the rest {SIGNINS}); "
              f"IoC {IOC}", flush=True)
        pools = Pools(np.random.default_rng(args.seed), args.population)
        if args.lake:
            lake = Path(args.lake)
            if (lake / "_index").exists():
                raise SystemExit(f"{lake} holds indexes already: give a lake as this bench generates it")
            seconds, planted = 0.0, min(12, args.days)
        else:
            lake = work / "lake"
            seconds, planted = build_lake(lake, pools, args.rows, args.days, args.seed)
        data = size(lake)
        print(f"  {'given' if args.lake else f'generated in {seconds:.0f} s'}: {data / 1e9:,.2f} GB of parquet in "
              f"{args.days * 2} files; IoC planted on {planted} days", flush=True)

        last = FIRST_DAY + dt.timedelta(days=args.days - 1)
        now = dt.datetime(last.year, last.month, last.day, tzinfo=UTC) + dt.timedelta(days=2)
        summary = compact(open_store(str(lake)), grace_days=0, now=now)
        index = size(lake / "_index")
        print(f"  indexed by compaction (every day was one file: indexes written from the lake): "
              f"{summary.indexes_repaired} indexes in {summary.seconds:.0f} s "
              f"({summary.seconds / max(summary.indexes_repaired, 1) * 1000:.0f} ms each); "
              f"{index / 1e6:,.1f} MB, {index / data:.1%} of the lake's {data / 1e6:,.0f} MB ({load()})", flush=True)
        if summary.indexes_repaired != 2 * args.days or summary.errors:
            raise SystemExit(f"expected {2 * args.days} indexes written, got {summary.to_json()}")

        measure_sweep(lake, args.days, args.repeat)

        sample = work / "sample"
        per_day = args.rows // args.days
        build_sample(sample, pools, per_day, args.sample_days, args.seed + 1)
        sample_now = dt.datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC) + dt.timedelta(
            days=args.sample_days + 2)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(2):
            for indexed in (False, True):
                copy = work / f"copy-{indexed}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(sample, copy)
                done = compact(open_store(str(copy)), grace_days=0, now=sample_now, index=indexed)
                if done.errors or done.partitions_compacted != 2 * args.sample_days:
                    raise SystemExit(f"sample compaction failed: {done.to_json()}")
                times[indexed].append(done.seconds)
                shutil.rmtree(copy)
        plain, indexed = min(times[False]), min(times[True])
        print(f"  compaction of {args.sample_days} days of {per_day:,} rows in 8 files each (both tables): "
              f"{plain:.1f} s without the index, {indexed:.1f} s with it: {indexed / plain:.2f}x ({load()})",
              flush=True)


if __name__ == "__main__":
    main()
