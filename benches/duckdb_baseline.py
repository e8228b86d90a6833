#!/usr/bin/env python3
"""DuckDB baseline for rampart's rollup job (issue 14, "High source cardinality").

Runs the job rampart runs -- dedup, 60 s event-time windows, one row per
(window, dimension, key) with raw/unique/duplicate/late counts, packets, bytes,
first/last seen and distinct sources, for origin_country, origin_asn,
origin_prefix (/24, /48), target_sector and country_sector -- as one DuckDB
batch query over the same events, and prints DuckDB's events/s with and
without loading (parsing) the input.

    pip install duckdb maxminddb          # the two Python packages it needs
    cargo build --release --bin rampart
    python3 benches/duckdb_baseline.py --rampart target/release/rampart \
        --events 500000 --partitions 4 --prefixes 600000 --source-spread 1

Untimed preparation:
  1. `rampart loadgen --output FILE --world-dir DIR` generates the events
     (protobuf `AttackEventBatch` records, the same events `rampart
     throughput` pre-loads for the same --events/--partitions/--prefixes/
     --source-spread/--seed, apart from a whole-minute shift of event time:
     `--malformed-share 0` as throughput does) and the world's country.mmdb,
     asn.mmdb and sectors.csv, the files rampart enriches from;
  2. the records are decoded into NDJSON, one object per event in partition
     offset order (`seq`), addresses as hex of their bytes;
  3. the MMDB files are exported into a table /24 (IPv4) or /48 (IPv6) ->
     prefix text, country, ASN (the world's networks are exactly /24 and /48,
     so this table is the MMDB's whole answer), and sectors.csv into a table
     destination /24 or /48 -> sector (longest prefix wins; its CIDRs are /20
     to /24 and /48).

Timed, per run (a fresh in-memory database each time): `load` reads the NDJSON
into a table (DuckDB's JSON parser, typed columns), `query` computes the
rollups into a table. events/s incl. load = events / (load + query); excl. =
events / query.

Semantics, as rampart's reference model (crates/core/src/model.rs) with the
default config: an event is *late* when its window end + allowed_lateness
(10 s) <= its partition's watermark (newest earlier event time of the
partition - out_of_orderness 5 s); late events count only as `late_events` of
the window of that newest time. Other events are deduplicated per partition in
offset order by the default fingerprint fields (event_id when present, else
src/dst address and port, protocol, kind, rule id and the 1 s time bucket).
Dedup horizon expiry (10 min) is not modelled: the script refuses inputs whose
event time spans more than the horizon. distinct_sources is exact here
(count(DISTINCT)); rampart's is exact up to 256 sources, then a HyperLogLog
estimate. Not computed (rampart does them): the top-10 destination ports,
kinds and rule ids per row, and key budgets (`keys.prefix_cells`,
`keys.publish_top`): compare with rampart runs that publish every key.

`--compare FILE` checks DuckDB's rows against rampart's rollups of the same
events, e.g. `rampart tail --format json --from-beginning` of the rollups topic
of a `rampart throughput` run: windows are aligned by their first window (the
two generate the same events a whole number of minutes apart), then every row
is compared on every count; distinct_sources exactly up to 256 sources and
within 5 % above.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

try:
    import duckdb
    import maxminddb
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(
        f"duckdb_baseline.py needs the Python packages duckdb and maxminddb ({e}).\n"
        "Install them with:  pip install duckdb maxminddb"
    )

WINDOW_MS = 60_000
OUT_OF_ORDERNESS_MS = 5_000
ALLOWED_LATENESS_MS = 10_000
DEDUP_HORIZON_MS = 600_000
TIME_BUCKET_MS = 1_000
EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z, a whole minute

DIMENSIONS = ["origin_country", "origin_asn", "origin_prefix", "target_sector", "country_sector"]

# ---------------------------------------------------------------- untimed prep


def generate(args, workdir: str) -> tuple[str, str]:
    rec = os.path.join(workdir, "events.rec")
    world = os.path.join(workdir, "world")
    cmd = [
        args.rampart, "loadgen", "--output", rec, "--world-dir", world,
        "--events", str(args.events), "--partitions", str(args.partitions),
        "--prefixes", str(args.prefixes), "--source-spread", str(args.source_spread),
        "--seed", str(args.seed), "--malformed-share", "0", "--epoch", str(EPOCH_MS),
        "--progress", "none",
    ]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return rec, world


def varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def decode_event(buf: bytes) -> dict:
    """One `rampart.v1.AttackEvent` (proto3 defaults for absent fields)."""
    f = {}
    i, n = 0, len(buf)
    while i < n:
        tag, i = varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            ln, i = varint(buf, i)
            v = buf[i:i + ln]
            i += ln
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wt}")
        f[num] = v
    t = f.get(1, 0)
    if t >= 1 << 63:
        t -= 1 << 64
    return {
        "time_ms": t,
        "src": f.get(2, b"").hex(),
        "dst": f.get(3, b"").hex(),
        "src_port": f.get(4, 0),
        "dst_port": f.get(5, 0),
        "protocol": f.get(6, 0),
        "kind": f.get(7, 0),
        "rule_id": f.get(8, 0),
        "event_id": f.get(9, b"").decode(),
        "packets": f.get(10, 0),
        "bytes": f.get(11, 0),
    }


def records(path: str):
    with open(path, "rb") as fh:
        if fh.read(8) != b"RAMPREC1":
            sys.exit(f"{path}: not a rampart record file")
        while head := fh.read(20):
            frame_len, partition, _ts, key_len = struct.unpack("<IiqI", head)
            body = fh.read(frame_len - 16)
            yield partition, body[key_len:]


def to_ndjson(rec: str, out: str) -> tuple[int, int, int]:
    """Decodes the record file into NDJSON; returns (events, min time, max time)."""
    per_partition_seq: dict[int, int] = {}
    events, tmin, tmax = 0, None, None
    with open(out, "w") as w:
        for partition, payload in records(rec):
            i, n = 0, len(payload)
            while i < n:  # AttackEventBatch: repeated AttackEvent events = 1
                tag, i = varint(payload, i)
                if tag != (1 << 3 | 2):
                    sys.exit(f"unexpected batch field tag {tag}")
                ln, i = varint(payload, i)
                e = decode_event(payload[i:i + ln])
                i += ln
                seq = per_partition_seq.get(partition, 0)
                per_partition_seq[partition] = seq + 1
                e["partition"] = partition
                e["seq"] = seq
                w.write(json.dumps(e, separators=(",", ":")))
                w.write("\n")
                events += 1
                t = e["time_ms"]
                tmin = t if tmin is None else min(tmin, t)
                tmax = t if tmax is None else max(tmax, t)
    return events, tmin or 0, tmax or 0


def net_hex(net: ipaddress._BaseNetwork, bits: int) -> str:
    return net.network_address.packed.hex()[: bits // 4]


def export_enrichment(world: str, workdir: str) -> None:
    """origin.csv (/24 or /48 -> prefix text, country, ASN) and sector.csv."""
    origins: dict[str, list] = {}
    with maxminddb.open_database(os.path.join(world, "country.mmdb")) as r:
        for net, rec in r:
            if net.version == 4 and net.prefixlen != 24 or net.version == 6 and net.prefixlen != 48:
                sys.exit(f"country.mmdb holds {net}: expected only /24 and /48 networks")
            iso = (rec.get("country") or rec.get("registered_country") or {}).get("iso_code", "ZZ")
            origins[net_hex(net, net.prefixlen)] = [str(net), iso, 0]
    with maxminddb.open_database(os.path.join(world, "asn.mmdb")) as r:
        for net, rec in r:
            row = origins.setdefault(net_hex(net, net.prefixlen), [str(net), "ZZ", 0])
            row[2] = rec.get("autonomous_system_number", 0)
    with open(os.path.join(workdir, "origin.csv"), "w") as w:
        w.write("net,prefix,country,asn\n")
        for k, (prefix, iso, asn) in origins.items():
            w.write(f"{k},{prefix},{iso},{asn}\n")

    rows = []
    with open(os.path.join(world, "sectors.csv")) as fh:
        next(fh)
        for line in fh:
            cidr, sector = line.strip().split(",", 1)
            rows.append((ipaddress.ip_network(cidr), sector))
    sectors: dict[str, str] = {}
    for net, sector in sorted(rows, key=lambda r: r[0].prefixlen):  # longest prefix last, wins
        unit = 24 if net.version == 4 else 48
        if net.prefixlen > unit:
            sys.exit(f"sectors.csv: {net} is longer than /{unit}; the /{unit} table cannot hold it")
        for sub in net.subnets(new_prefix=unit):
            sectors[net_hex(sub, unit)] = sector
    with open(os.path.join(workdir, "sector.csv"), "w") as w:
        w.write("net,sector\n")
        for k, sector in sectors.items():
            w.write(f"{k},{sector}\n")


def enrichment_tables(con, workdir: str) -> None:
    con.execute("CREATE TABLE origin AS SELECT * FROM read_csv(?, header = true, columns = "
                "{'net': 'VARCHAR', 'prefix': 'VARCHAR', 'country': 'VARCHAR', 'asn': 'UBIGINT'})",
                [os.path.join(workdir, "origin.csv")])
    con.execute("CREATE TABLE sector AS SELECT * FROM read_csv(?, header = true, columns = "
                "{'net': 'VARCHAR', 'sector': 'VARCHAR'})", [os.path.join(workdir, "sector.csv")])


# ---------------------------------------------------------------------- timed

LOAD_SQL = """
CREATE OR REPLACE TABLE ev AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
  time_ms: 'BIGINT', src: 'VARCHAR', dst: 'VARCHAR', src_port: 'UINTEGER', dst_port: 'UINTEGER',
  protocol: 'UINTEGER', kind: 'UINTEGER', rule_id: 'UINTEGER', event_id: 'VARCHAR',
  packets: 'UBIGINT', bytes: 'UBIGINT', partition: 'INTEGER', seq: 'BIGINT'})
"""

# The net of an address: its /24 (IPv4: 4 bytes = 8 hex digits) or /48 (IPv6).
NET = "CASE WHEN length({a}) = 8 THEN left({a}, 6) ELSE left({a}, 12) END"

QUERY_SQL = f"""
CREATE OR REPLACE TABLE rollups AS
WITH timed AS (
  SELECT *,
    max(time_ms) OVER (PARTITION BY partition ORDER BY seq
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS head
  FROM ev
), classed AS (
  SELECT *,
    coalesce(time_ms - time_ms % {WINDOW_MS} + {WINDOW_MS} + {ALLOWED_LATENESS_MS}
             <= head - {OUT_OF_ORDERNESS_MS}, false) AS late
  FROM timed
), deduped AS (
  SELECT *,
    CASE WHEN late THEN head - head % {WINDOW_MS} ELSE time_ms - time_ms % {WINDOW_MS} END AS w,
    NOT late AND row_number() OVER (
      PARTITION BY partition, late,
        CASE WHEN event_id <> '' THEN event_id END,
        CASE WHEN event_id = '' THEN src END, CASE WHEN event_id = '' THEN dst END,
        CASE WHEN event_id = '' THEN src_port END, CASE WHEN event_id = '' THEN dst_port END,
        CASE WHEN event_id = '' THEN protocol END, CASE WHEN event_id = '' THEN kind END,
        CASE WHEN event_id = '' THEN rule_id END,
        CASE WHEN event_id = '' THEN time_ms // {TIME_BUCKET_MS} END
      ORDER BY seq) = 1 AS uniq
  FROM classed
), enriched AS (
  SELECT d.w, d.late, d.uniq, d.src, d.time_ms, greatest(d.packets, 1) AS packets, d.bytes,
    coalesce(o.country, 'ZZ') AS country,
    'AS' || coalesce(o.asn, 0) AS asn,
    coalesce(o.prefix, d.src) AS prefix,
    coalesce(s.sector, 'unknown') AS sector
  FROM deduped d
  LEFT JOIN origin o ON o.net = {NET.format(a="d.src")}
  LEFT JOIN sector s ON s.net = {NET.format(a="d.dst")}
)
SELECT
  CASE
    WHEN GROUPING(country) = 0 AND GROUPING(sector) = 0 THEN 'country_sector'
    WHEN GROUPING(country) = 0 THEN 'origin_country'
    WHEN GROUPING(asn) = 0 THEN 'origin_asn'
    WHEN GROUPING(prefix) = 0 THEN 'origin_prefix'
    ELSE 'target_sector' END AS dimension,
  CASE
    WHEN GROUPING(country) = 0 AND GROUPING(sector) = 0 THEN country || '|' || sector
    ELSE coalesce(country, asn, prefix, sector) END AS key,
  w AS window_start_ms,
  count(*) FILTER (NOT late) AS raw_events,
  count(*) FILTER (uniq) AS unique_events,
  count(*) FILTER (NOT late AND NOT uniq) AS duplicates,
  coalesce(sum(packets) FILTER (uniq), 0) AS packets,
  coalesce(sum(bytes) FILTER (uniq), 0) AS bytes,
  count(*) FILTER (late) AS late_events,
  count(DISTINCT src) FILTER (uniq) AS distinct_sources,
  coalesce(min(time_ms) FILTER (uniq), 0) AS first_seen_ms,
  coalesce(max(time_ms) FILTER (uniq), 0) AS last_seen_ms
FROM enriched
GROUP BY GROUPING SETS ((w, country), (w, asn), (w, prefix), (w, sector), (w, country, sector))
"""


def timed_run(ndjson: str, workdir: str, threads: int | None) -> tuple[float, float, "duckdb.DuckDBPyConnection"]:
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {threads}")
    enrichment_tables(con, workdir)  # untimed: stands for opening the MMDB files
    t0 = time.perf_counter()
    con.execute(LOAD_SQL, [ndjson])
    t1 = time.perf_counter()
    con.execute(QUERY_SQL)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, con


# -------------------------------------------------------------------- checking


def compare(con, path: str) -> bool:
    """Every DuckDB row against rampart's rollups (tail --format json)."""
    # `rampart throughput` re-runs the merge alone on the same partials (its
    # merge-only figure), which publishes every rollup a second time into the
    # same topic: identical copies count once, differing copies are reported.
    con.execute(
        "CREATE OR REPLACE TABLE rampart AS SELECT DISTINCT * EXCLUDE (window_start, window_end) "
        "FROM read_json(?, format = 'newline_delimited')",
        [path],
    )
    conflicting = con.execute(
        "SELECT count(*) FROM (SELECT dimension, key, window_start_ms FROM rampart "
        "GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()[0]
    if conflicting:
        print(f"compare: {conflicting} rampart rollups were published twice with different contents")
    shift = con.execute(
        "SELECT (SELECT min(window_start_ms) FROM rampart) - (SELECT min(window_start_ms) FROM rollups)"
    ).fetchone()[0]
    if shift is None or shift % WINDOW_MS != 0:
        print(f"compare: no rollups to align (shift {shift})")
        return False
    fields = ["raw_events", "unique_events", "duplicates", "packets", "bytes", "late_events"]
    mism = " OR ".join(f"d.{f} IS DISTINCT FROM r.{f}" for f in fields)
    mism += (
        f" OR d.first_seen_ms + CASE WHEN d.unique_events > 0 THEN {shift} ELSE 0 END IS DISTINCT FROM r.first_seen_ms"
        f" OR d.last_seen_ms + CASE WHEN d.unique_events > 0 THEN {shift} ELSE 0 END IS DISTINCT FROM r.last_seen_ms"
        " OR (d.distinct_sources <= 256 AND d.distinct_sources IS DISTINCT FROM r.distinct_sources)"
        " OR (d.distinct_sources > 256 AND abs(r.distinct_sources - d.distinct_sources) > 0.05 * d.distinct_sources)"
    )
    rows = con.execute(f"""
      SELECT coalesce(d.dimension, r.dimension), coalesce(d.key, r.key),
             coalesce(d.window_start_ms + {shift}, r.window_start_ms),
             d.raw_events, r.raw_events, d.unique_events, r.unique_events,
             d.late_events, r.late_events, d.distinct_sources, r.distinct_sources
      FROM rollups d FULL JOIN rampart r
        ON d.dimension = r.dimension AND d.key = r.key AND d.window_start_ms + {shift} = r.window_start_ms
      WHERE d.key IS NULL OR r.key IS NULL OR {mism}
      ORDER BY 1, 2, 3""").fetchall()
    n_d = con.execute("SELECT count(*) FROM rollups").fetchone()[0]
    n_r = con.execute("SELECT count(*) FROM rampart").fetchone()[0]
    totals = con.execute(f"""
      SELECT d.window_start_ms + {shift}, sum(d.unique_events), sum(d.raw_events), sum(d.late_events),
             (SELECT sum(unique_events) FROM rampart r WHERE r.dimension = 'origin_country'
                AND r.window_start_ms = d.window_start_ms + {shift}),
             (SELECT sum(raw_events) FROM rampart r WHERE r.dimension = 'origin_country'
                AND r.window_start_ms = d.window_start_ms + {shift}),
             (SELECT sum(late_events) FROM rampart r WHERE r.dimension = 'origin_country'
                AND r.window_start_ms = d.window_start_ms + {shift})
      FROM rollups d WHERE d.dimension = 'origin_country' GROUP BY 1 ORDER BY 1""").fetchall()
    print(f"compare: {n_d} DuckDB rows, {n_r} rampart rollups, windows shifted by {shift // WINDOW_MS} min")
    print("  window_start_ms  unique (duckdb / rampart)  raw  late")
    for w, du, dr, dl, ru, rr, rl in totals:
        print(f"  {w}  {du} / {ru}  {dr} / {rr}  {dl} / {rl}")
    for r in rows[:20]:
        print("  differs:", r)
    print(f"compare: {len(rows)} differing rows" + (" (first 20 shown)" if len(rows) > 20 else ""))
    return not rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rampart", default="target/release/rampart", help="the rampart binary")
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--prefixes", type=int, default=600_000)
    p.add_argument("--source-spread", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default, one per core)")
    p.add_argument("--workdir", help="keep the generated files here (default: a temporary directory)")
    p.add_argument("--compare", metavar="ROLLUPS_JSONL",
                   help="rampart's rollups of the same events (rampart tail --format json)")
    p.add_argument("--output", metavar="FILE", help="write DuckDB's rows here as NDJSON")
    args = p.parse_args()

    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rampart-duckdb-")
        workdir = tmp.name
    os.makedirs(workdir, exist_ok=True)
    ndjson = os.path.join(workdir, "events.ndjson")
    stamp_path = os.path.join(workdir, "settings.json")
    stamp = {k: getattr(args, k) for k in ("events", "partitions", "prefixes", "source_spread", "seed")}
    stamp["epoch_ms"] = EPOCH_MS
    world = os.path.join(workdir, "world")
    try:
        with open(stamp_path) as fh:
            reuse = json.load(fh)["settings"] == stamp
    except (OSError, ValueError, KeyError):
        reuse = False
    if reuse:  # the same settings give the same events: keep the decoded file
        with open(stamp_path) as fh:
            events, tmin, tmax = json.load(fh)["decoded"]
        print(f"reusing {ndjson} ({events} events, same settings)", file=sys.stderr)
    else:
        rec, world = generate(args, workdir)
        t = time.perf_counter()
        events, tmin, tmax = to_ndjson(rec, ndjson)
        export_enrichment(world, workdir)
        print(f"decoded {events} events into {ndjson} ({os.path.getsize(ndjson) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t:.1f} s (untimed)", file=sys.stderr)
        with open(stamp_path, "w") as fh:
            json.dump({"settings": stamp, "decoded": [events, tmin, tmax]}, fh)

    loads, queries = [], []
    con = None
    for i in range(args.runs):
        load_s, query_s, con = timed_run(ndjson, workdir, args.threads)
        loads.append(load_s)
        queries.append(query_s)
        rows = con.execute("SELECT count(*) FROM rollups").fetchone()[0]
        print(f"run {i + 1}: load {load_s:.3f} s, query {query_s:.3f} s, {rows} rows: "
              f"{events / (load_s + query_s):,.0f} events/s incl. load, {events / query_s:,.0f} excl.")
        if i + 1 < args.runs:
            con.close()
    totals = [a + b for a, b in zip(loads, queries)]
    med_incl = events / statistics.median(totals)
    med_excl = events / statistics.median(queries)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    rows = con.execute("SELECT count(*) FROM rollups").fetchone()[0]
    print(f"duckdb {duckdb.__version__}, {threads} threads, {events} events, {rows} rows "
          f"({rows / events:.3f} per event)")
    print(f"duckdb_events_per_s_incl_load={med_incl:.0f} duckdb_events_per_s_excl_load={med_excl:.0f} "
          f"(medians of {args.runs})")
    if args.output:
        con.execute(f"COPY (SELECT * FROM rollups ORDER BY window_start_ms, dimension, key) "
                    f"TO '{args.output}' (FORMAT json)")
    # Dedup expiry is not modelled: it cannot matter when the events that are
    # not late span less than the horizon (late ones never reach dedup).
    span = con.execute(f"""
      SELECT max(time_ms) - min(time_ms) FROM (
        SELECT time_ms, max(time_ms) OVER (PARTITION BY partition ORDER BY seq
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS head FROM ev)
      WHERE NOT coalesce(time_ms - time_ms % {WINDOW_MS} + {WINDOW_MS} + {ALLOWED_LATENESS_MS}
                         <= head - {OUT_OF_ORDERNESS_MS}, false)""").fetchone()[0]
    if span >= DEDUP_HORIZON_MS:
        print(f"the events that are not late span {span / 1000:.0f} s of event time, more than the "
              "10 min dedup horizon this query does not model: the rows may differ from rampart's")
        return 1
    ok = True
    if args.compare:
        ok = compare(con, args.compare)
    con.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
