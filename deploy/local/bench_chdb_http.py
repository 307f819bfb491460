#!/usr/bin/env python3
"""Insert throughput of chdb_http.py, the way the Rust crate inserts: RowBinary rows,
`query=INSERT ... FORMAT RowBinary` in the URL, chunked body, `decompress=1` with
ClickHouse native LZ4 blocks (or --no-compress).

    python deploy/local/bench_chdb_http.py [--rows 1000000] [--batch 100000] [--url URL]

Without --url a temporary adapter is started on a free port with a temp data dir.
Encoding/compression happens before the clock starts: the number is adapter+chdb.
"""
import argparse
import http.client
import os
import random
import shutil
import struct
import tempfile
import time
import urllib.parse

from test_chdb_http import Adapter, native_blocks

DDL = """CREATE TABLE IF NOT EXISTS bench_obs (
    ts DateTime64(3, 'Asia/Shanghai'), station LowCardinality(String),
    temp Float32, humidity Float32, pressure Float32, wind_speed Float32,
    wind_dir UInt16, rain Float32, seq UInt64, flags UInt8
) ENGINE = MergeTree ORDER BY (station, ts)
SETTINGS non_replicated_deduplication_window = 1000"""
COLS = "ts,station,temp,humidity,pressure,wind_speed,wind_dir,rain,seq,flags"
ROW = struct.Struct("<ffffHfQB")  # everything after `station`


def encode_batch(start, n):
    rnd, t0, out = random.Random(start), 1_790_000_000_000, bytearray()
    for i in range(start, start + n):
        st = b"ST%04d" % (i % 500)
        out += struct.pack("<q", t0 + i * 10) + bytes([len(st)]) + st + ROW.pack(
            rnd.uniform(-20, 40), rnd.uniform(0, 100), rnd.uniform(950, 1050),
            rnd.uniform(0, 30), rnd.randrange(360), rnd.uniform(0, 5), i, i & 7)
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--url", help="existing adapter, e.g. http://127.0.0.1:8123")
    ap.add_argument("--no-compress", action="store_true")
    args = ap.parse_args()

    tmp = adapter = None
    if args.url:
        u = urllib.parse.urlsplit(args.url)
        host, port = u.hostname, u.port or 8123
    else:
        tmp = tempfile.mkdtemp(prefix="chdb_http_bench_")
        adapter = Adapter(os.path.join(tmp, "db"))
        host, port = "127.0.0.1", adapter.port
    conn = http.client.HTTPConnection(host, port, timeout=600)

    def post(query, body=b"", **params):
        url = "/?" + urllib.parse.urlencode(dict(params, query=query))
        chunks = [body[i:i + 256 * 1024] for i in range(0, len(body), 256 * 1024)]
        conn.request("POST", url, body=iter(chunks), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        out = r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}: {out.decode()}")
        return out

    try:
        post(DDL)
        post("TRUNCATE TABLE bench_obs")
        t = time.perf_counter()
        batches = [encode_batch(s, min(args.batch, args.rows - s))
                   for s in range(0, args.rows, args.batch)]
        raw_bytes = sum(map(len, batches))
        if not args.no_compress:
            batches = [native_blocks(b, 0x82, 1 << 20) for b in batches]
        print(f"encoded {args.rows} rows, {raw_bytes / 1e6:.1f} MB RowBinary, "
              f"{sum(map(len, batches)) / 1e6:.1f} MB on the wire in {time.perf_counter() - t:.1f}s")
        params = {} if args.no_compress else {"decompress": "1"}
        lat = []
        t = time.perf_counter()
        for b in batches:
            t1 = time.perf_counter()
            post(f"INSERT INTO bench_obs({COLS}) FORMAT RowBinary", b, **params)
            lat.append(time.perf_counter() - t1)
        elapsed = time.perf_counter() - t
        count = int(post("SELECT count() FROM bench_obs"))
        assert count == args.rows, count
        print(f"inserted {count} rows in {elapsed:.2f}s = {count / elapsed:,.0f} rows/s, "
              f"{raw_bytes / elapsed / 1e6:.1f} MB/s; per {args.batch}-row batch: "
              f"min {min(lat) * 1e3:.0f} ms, max {max(lat) * 1e3:.0f} ms")
    finally:
        conn.close()
        if adapter:
            adapter.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
