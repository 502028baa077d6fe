"""What each Azure Monitor log category weighs, in the simulator's records: the README's cost table uses it beside
Microsoft's published figures.

    .venv/bin/python bench/bench_monitor_log_sizes.py [--sign-ins-per-user N]

Per category: the mean JSON bytes of a record as Azure Monitor streams it, the Event Hubs ingress events Standard
bills per 1,000 records (bodies of at most 256 KB, billed in 64 KB units), and the bytes per record of the same records
as zstd parquet with the envelope as columns and `properties` kept as one JSON string (an estimate of the lake's size
until normalize_logs's own tables are measured). The simulator's records carry fewer fields than real ones (no
conditional access policy list, no authentication step details), so they are a lower bound. Asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.monitor_logs import MonitorLogs, event_hub_bodies  # noqa: E402
from simulator.tenant import Tenant  # noqa: E402

_BILLING_UNIT = 64 * 1024


def parquet_bytes(records: list[dict]) -> int:
    envelope = sorted({k for r in records for k in r if k != "properties"})
    columns = {k: [None if r.get(k) is None else str(r[k]) if not isinstance(r.get(k), (dict, list)) else
                   orjson.dumps(r[k]).decode() for r in records] for k in envelope}
    columns["properties"] = [orjson.dumps(r.get("properties")).decode() for r in records]
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, compression="zstd")
    return out.tell()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sign-ins-per-user", type=float, default=40.0)
    args = parser.parse_args()
    tenant = Tenant(seed=7, alerts=400, days=3)
    records = MonitorLogs(tenant, seed=3, sign_ins_per_user=args.sign_ins_per_user).records()
    by_category: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_category[record["category"]].append(record)
    print(f"{'category':<32}{'records':>9}{'JSON B/record':>15}{'EH events/1k':>14}{'parquet B/record':>18}")
    for category, items in sorted(by_category.items(), key=lambda kv: -len(kv[1])):
        json_bytes = sum(len(orjson.dumps(r)) for r in items)
        billed = sum(-(-len(body) // _BILLING_UNIT) for body in event_hub_bodies(items))
        print(f"{category:<32}{len(items):>9}{json_bytes / len(items):>15.0f}{billed * 1000 / len(items):>14.1f}"
              f"{parquet_bytes(items) / len(items):>18.0f}")


if __name__ == "__main__":
    main()
